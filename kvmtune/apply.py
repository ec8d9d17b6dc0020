"""Carry out a plan: re-read, write only what differs, read back from the kernel.

Originals go to the state file before the first write. If a change fails, the
changes this run made are undone in reverse order (unless keep_partial), and
every change reports its final status, so a host is never left half-tuned
without saying so.
"""

from __future__ import annotations

from errno import errorcode

from kvmtune import hugepages
from kvmtune.errors import HostError, KvmtuneError
from kvmtune.host import Host
from kvmtune.plan import (CHANGED, FAILED, OK, PENDING_REBOOT, PENDING_RESTART, REBOOT,
                          UNDONE, Change, Plan, same)
from kvmtune.probe import parse
from kvmtune.state import Lock, State, load_state

COMPACT = "proc/sys/vm/compact_memory"


class ApplyFailed(Exception):
    pass


def preflight(host: Host) -> None:
    """On a live host, refuse before any write rather than fail half-way."""
    import os

    if not host.live:
        return
    if os.geteuid() != 0:
        raise KvmtuneError("apply and rollback change the kernel and /etc: run as root")
    if host.read_only("proc/sys"):
        raise KvmtuneError("/proc/sys is read-only here (a container?): nothing can be applied")


def apply_plan(plan: Plan, host: Host, *, keep_partial: bool = False, wait: bool = False,
               compact: bool = False, progress=None) -> list[Change]:
    """Apply the pending changes; return those this run changed (empty if none).

    ``progress(text)``, if given, is a context manager shown around slow steps (pool
    allocation can take seconds for large pools)."""
    pending = plan.pending
    if not pending:
        return []
    preflight(host)
    with Lock(host, wait) as lock:
        previous = load_state(host)
        state = previous or State()
        if not state.data["state_dirs"]:
            state.data["state_dirs"] = lock.created
        name = getattr(plan.profile, "name", None)
        if name and name not in state.data["profiles"]:
            state.data["profiles"].append(name)
        for c in pending:
            _record_original(state, c)
        state.save(host)
        done: list[Change] = []
        try:
            for c in pending:
                if progress is not None and c.kind == "pool":
                    with progress(f"allocating {c.target}: {c.before} -> {c.after} pages"):
                        execute(c, host, state, compact)
                else:
                    execute(c, host, state, compact)
                done.append(c)
                if c.status == FAILED:
                    raise ApplyFailed(c.detail)
        except ApplyFailed:
            if not keep_partial:
                # The failed change itself may have half-happened (a pool granted in part).
                undo([d for d in done if d.status != OK], host, state)
                if previous is None:  # nothing of ours is left: leave no state behind either
                    forget_state(host, state)
                    return [c for c in pending if c.status != OK]
        state.save(host)
    return [c for c in pending if c.status != OK]


def forget_state(host: Host, state: State) -> None:
    from kvmtune.state import STATE_FILE

    host.remove(STATE_FILE)
    for d in reversed(state.data["dirs"]):
        host.rmdir(d)
    for d in reversed(state.data["state_dirs"]):
        host.rmdir(d)


def _record_original(state: State, c: Change) -> None:
    if c.kind == "file":
        state.record_file(c.rel, c.before)
    elif c.kind == "mount":
        state.mounts.setdefault(c.meta["path"], {"was": c.before, "dirs": []})
    else:
        state.record_value(c.rel, c.before)


def execute(c: Change, host: Host, state: State, compact: bool = False) -> None:
    try:
        if c.kind == "file":
            _file(c, host, state)
        elif c.kind == "mount":
            _mount(c, host, state)
        elif c.kind == "unmount":
            _unmount(c, host)
        else:
            _knob(c, host, compact)
    except HostError as exc:
        c.status = FAILED
        code = errorcode.get(exc.errno, "") if exc.errno else ""
        c.detail = f"the kernel refused: {exc.reason}" + (f" ({code})" if code else "")


def read_value(c: Change, host: Host):
    raw = host.read_optional(c.rel)
    if raw is None:
        return None
    return parse.bracketed(raw) if c.kind == "selector" else raw.strip()


def _knob(c: Change, host: Host, compact: bool) -> None:
    current = read_value(c, host)
    if c.kind != "unmerge" and same(current, c.after):
        c.status, c.detail = OK, c.detail or "already set"
        return
    host.write(c.rel, c.after)
    if c.kind == "pool":
        short = hugepages.shortfall(c, host)
        if short and compact:
            host.write(COMPACT, "1")  # defragment, then ask once more
            host.write(c.rel, c.after)
            short = hugepages.shortfall(c, host)
        if short:
            if c.meta.get("boot"):
                c.status, c.detail = PENDING_REBOOT, f"{short}; the boot reservation will provide them"
            else:
                c.status = FAILED
                c.detail = (f"{short}: memory is too fragmented; compact and retry "
                            "(hugepages.compact: true) or reserve at boot (boot: true)")
            return
        c.status = CHANGED
        return
    got = read_value(c, host)
    if not same(got, c.after):
        c.status, c.detail = FAILED, f"wrote {c.after}, the kernel kept {got}"
        return
    c.status = CHANGED


def _file(c: Change, host: Host, state: State) -> None:
    if host.read_optional(c.rel) == c.after:
        c.status = OK
        return
    if c.after is None:
        host.remove(c.rel)
    else:
        state.record_dirs(host.makedirs(c.rel.rsplit("/", 1)[0]))
        host.write_file(c.rel, c.after)
    c.status = PENDING_REBOOT if c.when == REBOOT else CHANGED


def _mount(c: Change, host: Host, state: State) -> None:
    path = c.meta["path"]
    record = state.mounts.setdefault(path, {"was": c.before, "dirs": []})
    if c.meta.get("remount"):
        host.umount(path)
    created = host.makedirs(path.lstrip("/"), c.meta["mode"])
    record["dirs"] += created
    host.mount("hugetlbfs", path, c.meta["options"])
    record["mounted"] = True
    if not any(line.split()[1:2] == [path] for line in (host.read_optional("proc/mounts") or "").splitlines()):
        c.status, c.detail = FAILED, "mount returned success but /proc/mounts does not show it"
        return
    c.status = PENDING_RESTART if c.meta.get("restart") else CHANGED


def _unmount(c: Change, host: Host) -> None:
    host.umount(c.meta["path"])
    for d in reversed(c.meta.get("dirs", [])):
        host.rmdir(d)
    c.status = CHANGED


def undo(done: list[Change], host: Host, state: State) -> None:
    """Put back what this run changed, newest first; mark each undone or failed."""
    for c in reversed(done):
        try:
            if c.kind == "file":
                if c.before is None:
                    host.remove(c.rel)
                else:
                    host.write_file(c.rel, c.before)
            elif c.kind == "mount":
                record = state.mounts.get(c.meta["path"], {})
                host.umount(c.meta["path"])
                for d in reversed(record.get("dirs", [])):
                    host.rmdir(d)
                state.mounts.pop(c.meta["path"], None)
            elif c.before is not None:
                host.write(c.rel, str(c.before))
            if c.status == FAILED:
                c.detail += f"; put back to {c.before}"
            else:
                c.status, c.detail = UNDONE, (c.detail + "; " if c.detail else "") + "undone after a later failure"
        except HostError as exc:
            c.detail = (c.detail + "; " if c.detail else "") + f"undo failed: {exc}"
