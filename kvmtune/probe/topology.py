"""Which online CPUs share a core (SMT siblings), from sysfs topology.

thread_siblings_list is the kernel's own answer (core_cpus_list on newer kernels says
the same); a CPU without it is taken as a core of its own, so a split can never be
made across siblings the kernel did not show.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe import parse

CPU_DIR = "sys/devices/system/cpu"


def read_cores(host, online: tuple[int, ...], only=None) -> tuple[tuple[int, ...], ...]:
    """The online CPUs grouped by core, each core's CPUs ascending, cores by their first CPU.
    ``only``: just the cores of these CPUs (a check of isolated CPUs on a 1024-CPU host reads
    their siblings, not a thousand files)."""
    seen: set[int] = set()
    cores = []
    alive = set(online)
    for cpu in sorted(online if only is None else alive & set(only)):
        if cpu in seen:
            continue
        text = None
        for name in ("thread_siblings_list", "core_cpus_list"):
            try:
                text = host.read_optional(f"{CPU_DIR}/cpu{cpu}/topology/{name}")
            except HostError:
                text = None
            if text and text.strip():
                break
        siblings = set(parse.cpulist(text.strip())) if text and text.strip() else {cpu}
        core = tuple(sorted((siblings & alive) | {cpu}))
        seen.update(core)
        cores.append(core)
    return tuple(cores)
