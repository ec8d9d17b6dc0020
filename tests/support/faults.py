"""Run kvmtune in a forked child and kill it, pause it, or watch its lock, at the system-call level.

The child wraps every ``os`` call that changes a file system (an open for writing or
creating, write, rename, unlink, mkdir, rmdir, chmod, chown, setxattr) and, on the
live kernel, the Host's mount and umount. ``kill_at=N`` sends SIGKILL to the child
just before (or just after) its Nth such call: a real kill, no ``finally`` runs. The
parent learns how many calls a complete run made, so a test can kill at every one.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MUTATORS = ("write", "rename", "replace", "unlink", "remove", "mkdir", "rmdir", "chmod", "fchmod",
            "chown", "fchown", "lchown", "setxattr", "removexattr", "symlink", "truncate", "ftruncate",
            "sched_setaffinity")  # a live kernel thread's CPUs (host.affinity)


def _install(kill_at, when, pause_at, pause_fds, counter):
    def step():
        counter[0] += 1
        n = counter[0]
        if pause_at is not None and n == pause_at:
            os.write(pause_fds[1], b"p")  # "paused inside": tell the parent, then wait for it
            os.read(pause_fds[0], 1)
        if kill_at is not None and n == kill_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    def after(n):
        if kill_at is not None and n == kill_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    def wrap(fn, counts=lambda *a, **k: True):
        def wrapper(*args, **kwargs):
            if not counts(*args, **kwargs):
                return fn(*args, **kwargs)
            n = step()
            try:
                return fn(*args, **kwargs)
            finally:  # "after" means after the call returned or raised
                after(n)
        return wrapper

    real_open = os.open
    os.open = wrap(real_open, lambda path, flags, *a, **k: bool(flags & WRITE_FLAGS) and not str(path).startswith("/dev/"))
    for name in MUTATORS:
        if hasattr(os, name):
            fn = getattr(os, name)
            if name == "write":
                setattr(os, name, wrap(fn, lambda fd, data: fd > 2 and fd not in pause_fds))
            else:
                setattr(os, name, wrap(fn))
    from kvmtune.host.mounts import HostMounts

    for name in ("mount", "umount"):  # a live mount is a syscall through ctypes, not os
        setattr(HostMounts, name, wrap(getattr(HostMounts, name), lambda self, *a, **k: self.live))


def _watch_lock(marker_dir: str):
    """Record a violation when two processes hold an exclusive flock at once."""
    real_flock, real_close = fcntl.flock, os.close
    held = set()
    marker = os.path.join(marker_dir, "holder")

    def flock(fd, op):
        real_flock(fd, op)
        if op & fcntl.LOCK_EX:
            try:
                real_close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                with open(os.path.join(marker_dir, f"violation-{os.getpid()}"), "w") as f:
                    f.write("two holders\n")
            held.add(fd)
        elif op & fcntl.LOCK_UN and fd in held:
            held.discard(fd)
            os.unlink(marker)

    def close(fd):
        if fd in held:
            held.discard(fd)
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass
        return real_close(fd)

    fcntl.flock, os.close = flock, close


def fork_run(argv: list[str], **kw):
    """Run ``kvmtune ARGV`` in a child. Returns (child, report) where report() waits and
    gives (exit code or -signal, mutating calls made, stdout text)."""

    def run():
        from kvmtune.entry import main

        return main(argv)
    return fork_call(run, **kw)


def fork_call(fn, *, kill_at: int | None = None, when: str = "before",
              pause_at: int | None = None, lock_dir: str | None = None, wait: bool = True):
    """Run ``fn()`` (an exit code) in a child, as fork_run runs the CLI: for what the CLI
    cannot reach, such as a bench on a snapshot tree."""
    count_r, count_w = os.pipe()
    out_r, out_w = os.pipe()
    pause = (os.pipe(), os.pipe()) if pause_at is not None else None
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(count_r)
            os.close(out_r)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)  # stderr joins stdout: a failing child says why
            import sys

            sys.stdout = os.fdopen(1, "w", closefd=False)
            sys.stderr = os.fdopen(2, "w", closefd=False)
            counter = [0]
            fds = (pause[1][0], pause[0][1]) if pause else ()
            if lock_dir:
                _watch_lock(lock_dir)
            _install(kill_at, when, pause_at, fds, counter)
            code = fn()
            sys.stdout.flush()
            os.write(count_w, struct.pack("=ii", code, counter[0]))
        finally:
            os._exit(0)
    os.close(count_w)
    os.close(out_w)

    class Child:
        def __init__(self):
            self.pid = pid
            self.pause = pause

        def wait_paused(self, timeout=10.0):
            import select

            ready, _, _ = select.select([pause[0][0]], [], [], timeout)
            assert ready, "the child never reached its pause point"
            os.read(pause[0][0], 1)

        def resume(self):
            os.write(pause[1][1], b"g")

        def report(self):
            chunks = []
            while chunk := os.read(out_r, 65536):
                chunks.append(chunk)
            _, status = os.waitpid(pid, 0)
            data = os.read(count_r, 8)
            os.close(count_r)
            os.close(out_r)
            text = b"".join(chunks).decode()
            if os.WIFSIGNALED(status):
                return -os.WTERMSIG(status), None, text
            code, count = struct.unpack("=ii", data) if len(data) == 8 else (None, None)
            return code, count, text

    child = Child()
    return child.report() if wait else child


def refuse_write(host, rel: str, value: str | None = None, errno_: int = 5):
    """Make ``host`` refuse (HostError, EIO by default) every write of ``value`` (any value if
    None) to ``rel``, in process, as a kernel or a full disk might: for undo and rollback paths."""
    from kvmtune.errors import HostError

    real = host.write

    def write(target, text, *args, **kwargs):
        if target == rel and (value is None or str(text).strip() == value):
            raise HostError(target, "refused by the test", errno_)
        return real(target, text, *args, **kwargs)

    host.write = write
    return host
