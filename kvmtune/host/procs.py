"""A process's threads as the Host shows them: which CPUs each may run on and ran on last.

Both come from /proc/PID/task (stat: the name and the last CPU); the CPUs a thread may
use come, live, from sched_getaffinity (exact, one system call), in a snapshot from the
captured status file. psutil would answer the same, but importing it costs about 50 ms
here (socket, datetime, subprocess...), twice a bare interpreter's start, on a path
check takes on every host. A process that exits mid-read raises ProcessGone; one the
user may not inspect raises HostError with EACCES.
"""

from __future__ import annotations

import errno

from kvmtune.errors import HostError
from kvmtune.record import record
from kvmtune.grammar import digits


# stat field 9: PF_KTHREAD, and PF_USER_WORKER, which since Linux 6.4 marks the vhost and
# kvm-nx-lpage-recovery tasks the kernel starts inside a VMM's thread group (include/linux/sched.h)
PF_KERNEL_WORKER = 0x00200000 | 0x00004000
PF_KTHREAD = 0x00200000
PF_NO_SETAFFINITY = 0x04000000  # userland may not move it: a per-CPU kthread (every kworker too)


def movable(flags: int, allowed) -> bool:
    """A kernel thread sched_setaffinity may move: not per-CPU, and not bound to one CPU by design."""
    return not flags & PF_NO_SETAFFINITY and len(allowed) > 1


class ProcessGone(Exception):
    """The process (or thread) exited while it was being read."""


@record
class Thread:
    tid: int
    comm: str
    allowed: tuple[int, ...]  # CPUs it may run on
    last_cpu: int | None  # the CPU it ran on last (field 39 of stat)
    kernel: bool = False  # a kernel worker living in the process (vhost, kvm-nx-lpage-recovery)


def _stat_fields(text: str) -> tuple[str, list[str]]:
    """(comm, the fields after it) of a /proc stat line; comm may hold spaces and parentheses."""
    head, _, tail = text.rpartition(")")
    return head.partition("(")[2], tail.split()


class HostProcs:
    def threads(self, pid: int) -> list[Thread]:
        out = []
        for entry in self.listdir(f"proc/{pid}/task"):
            if digits(entry):
                thread = self._thread(pid, int(entry))
                if thread is not None:
                    out.append(thread)
        if not out and not self.exists(f"proc/{pid}"):
            raise ProcessGone(pid)
        return out

    def kernel_thread(self, pid: int) -> tuple[str, int, tuple[int, ...]] | None:
        """(comm, stat flags, CPUs allowed) of a kernel thread (PF_KTHREAD); None for a user
        task or one that exited. Read again just before its affinity is written: a PID may be reused."""
        try:
            stat = self.read_optional(f"proc/{pid}/stat")
            if stat is None:
                return None
            comm, fields = _stat_fields(stat)
            flags = int(fields[6]) if len(fields) > 6 and digits(fields[6]) else 0
            if not flags & PF_KTHREAD:
                return None
            return comm, flags, self._allowed(f"proc/{pid}", pid)
        except HostError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return None
            raise

    def _thread(self, pid: int, tid: int) -> Thread | None:
        """One thread, or None if it exited while it was read."""
        base = f"proc/{pid}/task/{tid}"
        try:
            stat = self.read_optional(f"{base}/stat")
            if stat is None:
                return None
            allowed = self._allowed(base, tid)
        except HostError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return None
            raise
        comm, fields = _stat_fields(stat)
        last = fields[36] if len(fields) > 36 else None  # stat field 39: the state is field 3
        flags = fields[6] if len(fields) > 6 else ""  # stat field 9
        return Thread(tid, comm, allowed, int(last) if last and digits(last) else None,
                      digits(flags) and bool(int(flags) & PF_KERNEL_WORKER))

    def _allowed(self, base: str, tid: int) -> tuple[int, ...]:
        import os

        if self.live:
            try:
                return tuple(sorted(os.sched_getaffinity(tid)))
            except ProcessLookupError:
                raise HostError(base, "exited", errno.ESRCH) from None
            except PermissionError:
                return ()
        from kvmtune.host.cpulist import cpulist

        for line in (self.read_optional(f"{base}/status") or "").splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return tuple(cpulist(line.partition(":")[2].strip()))
        return ()

    def task_samples(self, limit: int = 65536) -> dict[tuple[int, int], tuple[str, str | None]]:
        """Every thread's (pid, tid) -> (stat, schedstat) texts, for counting who ran where
        (bench's noise section). A thread that exits mid-read is left out; at most ``limit``
        threads, so a host with a runaway fork count cannot make the read unbounded."""
        out: dict[tuple[int, int], tuple[str, str | None]] = {}
        for entry in self.listdir("proc"):
            if not digits(entry):
                continue
            try:
                tids = self.listdir(f"proc/{entry}/task")
            except HostError:  # gone, or hidden by hidepid: not ours to count
                continue
            for tid in tids:
                if not digits(tid):
                    continue
                base = f"proc/{entry}/task/{tid}"
                try:
                    stat = self.read_optional(f"{base}/stat")
                    # schedstat's third field counts the times the thread was given a CPU; stat
                    # has no such count (its context switches are in status, a far longer read)
                    sched = self.read_optional(f"{base}/schedstat") if stat is not None else None
                except HostError:
                    continue
                if stat is not None:
                    out[int(entry), int(tid)] = (stat, sched)
                    if len(out) >= limit:
                        return out
        return out
