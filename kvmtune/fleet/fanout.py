"""Share CPU-bound work over this machine's CPUs with fork, for the fleet commands.

Reading 10,000 hosts' results is mostly parsing JSON, which holds the GIL: threads do not
help, processes do. fork is used directly (not multiprocessing): the work is a function the
child already has, nothing is re-imported, and only the answers cross back, pickled through
a pipe. The parent does a share itself, so two CPUs cost one fork. The children run no
program (nothing is spawned) and leave with os._exit, so they flush none of the parent's
output and run none of its exit handlers.
"""

from __future__ import annotations

import gc
import os

from kvmtune.errors import KvmtuneError

MAX_WORKERS = 8  # beyond this, reading the files from the page cache is the limit, not parsing


def cpus() -> int:
    try:
        return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return 1


def fan_out(work, items: list, workers: int) -> list:
    """``work(some items) -> one answer per item``, over ``workers`` processes; the answers
    in the order of ``items``. Item i goes to share i % workers, so files of one kind that lie
    together in a directory are spread evenly."""
    if workers <= 1 or len(items) < 2:
        return list(work(items))
    workers = min(workers, len(items))
    import pickle

    children: dict[int, int] = {}  # pid -> read end of its pipe, until answered
    shares = []
    try:
        for k in range(1, workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child; coverage does not follow a fork
                os.close(r)
                _child(work, items[k::workers], w, pickle)
            os.close(w)
            children[pid] = r
        shares.append(list(work(items[0::workers])))
        for pid in list(children):
            shares.append(_answer(pid, children.pop(pid), pickle))
    finally:
        for pid, r in children.items():
            _reap(pid, r)
    out = [None] * len(items)
    for k, share in enumerate(shares):
        if len(share) != len(items[k::workers]):
            raise KvmtuneError(f"a worker answered {len(share)} of {len(items[k::workers])} items")
        out[k::workers] = share
    return out


def _child(work, share: list, w: int, pickle) -> None:  # pragma: no cover - runs after fork
    try:
        gc.disable()  # the child makes no garbage worth collecting before it leaves
        try:
            payload = pickle.dumps(("ok", list(work(share))), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # any failure goes back to the parent as its message
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        view = memoryview(payload)
        while view:
            view = view[os.write(w, view):]
    finally:
        os._exit(0)


def _answer(pid: int, r: int, pickle) -> list:
    chunks = []
    try:
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(r)
        _, status = os.waitpid(pid, 0)
    paused = gc.isenabled()
    gc.disable()  # unpickling makes a container per field: the collector would walk them again and again
    try:
        kind, value = pickle.loads(b"".join(chunks))
    except Exception:
        raise KvmtuneError(f"a worker reading results ended without an answer ({_how(status)})") from None
    finally:
        if paused:
            gc.enable()
    if kind != "ok":
        raise KvmtuneError(f"a worker reading results failed: {value}")
    return value


def _reap(pid: int, r: int) -> None:
    """After a failure in the parent: close the pipe (the child's write then fails and it
    leaves) and wait for it, so no child outlives the command."""
    os.close(r)
    os.waitpid(pid, 0)


def _how(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
