"""The CPUs a kernel thread may run on: the one change kvmtune makes to a task, not a file.

Mixed into WritableHost. Live, it is sched_setaffinity(2) on the thread (the kernel refuses
a per-CPU kthread, PF_NO_SETAFFINITY, with EINVAL); a snapshot has no tasks, so its captured
proc/PID/status file is rewritten whole (Cpus_allowed_list and Cpus_allowed), as its knob
files are, so that apply and rollback of a tree are byte-exact and a kill leaves no half file.
"""

from __future__ import annotations

import errno
import os
import stat

from kvmtune.errors import HostError
from kvmtune.host.reads import exact_bytes


class HostAffinity:
    def set_affinity(self, pid: int, cpus) -> None:
        rel = f"proc/{pid}/status"
        self._guard("affinity", rel)
        cpus = sorted(set(cpus))
        if self.live:
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError as exc:
                raise HostError(f"proc/{pid}", f"sched_setaffinity: {os.strerror(exc.errno)}", exc.errno) from None
            return
        from kvmtune.host.cpulist import format_cpulist

        mask = 0
        for cpu in cpus:
            mask |= 1 << cpu
        lines = []
        for line in (self.read_exact_optional(rel) or "").split("\n"):
            if line.startswith("Cpus_allowed_list:"):
                line = f"Cpus_allowed_list:\t{format_cpulist(cpus)}"
            elif line.startswith("Cpus_allowed:"):
                line = f"Cpus_allowed:\t{mask:x}"
            lines.append(line)

        def replace(dir_fd, name):
            from kvmtune.host.atomic import replace_at

            st = self._refuse_link(dir_fd, name)
            if st is None:
                raise OSError(errno.ESRCH, "No such process")
            replace_at(dir_fd, name, exact_bytes("\n".join(lines)), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))
        self._at(rel, replace)
