"""Kernel threads that may run anywhere, moved onto housekeeping CPUs (cpus.kthreads).

tuned's scheduler plugin does this for every thread when ``isolated_cores`` is set
(profiles/cpu-partitioning/tuned.conf and profiles/realtime/tuned.conf, [scheduler]
isolated_cores=): the CPUs a thread may use, minus the isolated ones. kvmtune moves only
kernel threads (user tasks are the service manager's: systemd's CPUAffinity=, tune.cpus), and
of those only the movable ones: a per-CPU kthread (ksoftirqd/N, migration/N, cpuhp/N, every
kworker) carries PF_NO_SETAFFINITY and the kernel refuses to move it, and one allowed on a
single CPU is bound there by design. Each thread's CPUs are journaled, keyed by PID and name:
rollback puts back only a thread that still has both (a PID outlives nothing across a reboot).
"""

from __future__ import annotations

import errno
import re

from kvmtune.errors import HostError
from kvmtune.grammar import digits
from kvmtune.host.procs import movable
from kvmtune.probe import parse
from kvmtune.tune.change import CHANGED, FAILED, OK, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, integer, kind
from kvmtune.tune.sections import section

COMM = re.compile(r"[A-Za-z0-9_./+@:-]{1,64}")  # a kthread's name as /proc/PID/stat shows it
MAX_THREADS = 65536
NOT_CAPTURED = "cpus.kthreads: a snapshot holds no processes: kernel threads are moved only on the live host"


@kind
class KthreadChange(Change):
    """One kernel thread's CPUs, compared as sets, written with sched_setaffinity."""

    KIND, ORDER = "kthread", 62
    FIELDS = (Field("pid", integer(2, 1 << 22), "a PID"),
              Field("comm", lambda v: isinstance(v, str) and COMM.fullmatch(v) is not None, "a kernel thread's name"))
    __slots__ = ("pid", "comm")

    def __init__(self, pid: int, comm: str, before, after, status=None, detail=""):
        self.pid, self.comm = pid, comm
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"kthread {self.comm} ({self.pid}) affinity")

    @staticmethod
    def equal(current, wanted) -> bool:
        if current is None or wanted is None:
            return current is wanted
        try:
            return set(parse.cpulist(str(current))) == set(parse.cpulist(str(wanted)))
        except ValueError:
            return False

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [] if live else [(f"proc/{self.pid}/status", "affinity")]

    def read(self, host) -> str | None:
        """Its CPUs now, or None if the PID no longer is this kernel thread."""
        found = host.kernel_thread(self.pid)
        if found is None or found[0] != self.comm:
            return None
        return parse.format_cpulist(list(found[2]))

    def execute(self, host, ctx) -> None:
        current = self.read(host)  # just before writing: the PID may now be another task
        if current is None:
            self.status, self.detail = OK, "exited: nothing to move"
            return
        if self.equal(current, self.after):
            self.status, self.detail = OK, self.detail or "already set"
            return
        try:
            host.set_affinity(self.pid, parse.cpulist(str(self.after)))
        except HostError as exc:
            if exc.errno == errno.ESRCH:  # it exited after the re-read: nothing left to move
                self.status, self.detail = OK, "exited before it was moved"
                return
            self.status, self.detail = FAILED, refused(exc)
            return
        got = self.read(host)
        self.status = CHANGED if self.equal(got, self.after) else FAILED
        if self.status == FAILED:
            self.detail = f"set {self.after}, the kernel kept {got}"

    def undo(self, host) -> None:
        if self.before is not None and self.read(host) is not None:
            host.set_affinity(self.pid, parse.cpulist(str(self.before)))

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        return {"knobs": {key: cls.from_record(record, None, None).read(host) for key, record in entries}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for key, record in sorted(entries, key=lambda e: e[1]["pid"]):
            if record["original"] is None:
                continue
            current = facts.knobs.get(key)
            if current is None:  # exited, or the PID is another task's now: not ours to move
                warnings.append(f"kthread {record['comm']} ({record['pid']}) is gone: its CPUs are not restored")
                continue
            out.append(cls.from_record(record, current, record["original"]))
        return out

    @staticmethod
    def parse_original(value):
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"original {value!r:.60} is not a CPU list")
        parse.cpulist(value)  # ValueError if it is not one
        return value


def read_kthreads(host) -> tuple:
    """(pid, comm, CPUs allowed) of every movable kernel thread."""
    out = []
    for entry in host.listdir("proc")[:MAX_THREADS]:
        if not digits(entry) or entry in ("0", "1"):
            continue
        found = host.kernel_thread(int(entry))
        if found is not None and movable(found[1], found[2]):
            out.append((int(entry), found[0], tuple(found[2])))
    return tuple(sorted(out))


def plan_kthreads(kthreads, split, warnings: list[str]) -> list[KthreadChange]:
    """Each movable kernel thread that may reach an isolated CPU: its CPUs minus the isolated ones."""
    isolated = set(split.isolated)
    out = []
    for pid, comm, allowed in kthreads:
        if not set(allowed) & isolated:
            continue
        if not COMM.fullmatch(comm):
            warnings.append(f"kernel thread {pid} has a name kvmtune does not journal ({comm[:20]!r}): left where it is")
            continue
        keep = sorted(set(allowed) - isolated)
        if not keep:  # only isolated CPUs: moving it would put it where it was never allowed
            continue
        out.append(KthreadChange(pid, comm, parse.format_cpulist(list(allowed)), parse.format_cpulist(keep)))
    return out


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.cpus is not None and profile.cpus.kthreads:
        out["kthreads"] = read_kthreads(host)


def _plan(profile, facts, ctx) -> list:
    split = ctx.shared.get("split")
    if split is None or not profile.cpus.kthreads:
        return []
    if facts.capture is not None:  # kvmtune.snapshot never captures a process, kernel threads included
        ctx.warnings.append(NOT_CAPTURED)
    return plan_kthreads(facts.kthreads, split, ctx.warnings)


section("kthreads", order=62, reads=_read, plan=_plan)
