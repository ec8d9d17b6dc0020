"""cgroup v1 and v2: which controllers exist where libvirt/QEMU would use them.

v2 has no ``cpuacct`` (its accounting is part of ``cpu``), calls ``blkio``
``io``, and controls devices with BPF programs rather than a controller, so a
v2 host must not be judged by v1 names (libvirt's false ``devices`` warning).
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe.system import Mount

V1_NEEDED = ("cpu", "cpuacct", "cpuset", "memory", "devices", "blkio")
V2_NEEDED = ("cpu", "cpuset", "memory", "io", "pids")


@record
class CgroupFacts:
    mode: str  # "v2" (unified), "v1", "hybrid" or "none"
    v1_controllers: tuple[str, ...]
    v2_mount: str | None
    v2_controllers: tuple[str, ...]
    v2_subtree_control: tuple[str, ...]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "v1_controllers": list(self.v1_controllers),
            "v2_mount": self.v2_mount,
            "v2_controllers": list(self.v2_controllers),
            "v2_subtree_control": list(self.v2_subtree_control),
        }


def read_cgroups(host: Host, mounts: list[Mount]) -> CgroupFacts:
    problems = []
    v1 = sorted({opt for m in mounts if m.fstype == "cgroup" for opt in m.options
                 if opt in V1_NEEDED or opt in ("freezer", "pids", "net_cls", "perf_event", "hugetlb")})
    v2_mount = next((m.target for m in mounts if m.fstype == "cgroup2"), None)
    v2: list[str] = []
    subtree: list[str] = []
    if v2_mount:
        rel = v2_mount.lstrip("/")
        for name, into in (("cgroup.controllers", v2), ("cgroup.subtree_control", subtree)):
            try:
                into.extend((host.read_optional(f"{rel}/{name}") or "").split())
            except HostError as exc:
                problems.append(f"{v2_mount}/{name}: {exc.reason}")
    if v2_mount and not v1:
        mode = "v2"
    elif v1 and v2_mount:
        mode = "hybrid"
    elif v1:
        mode = "v1"
    else:
        mode = "none"
    return CgroupFacts(mode, tuple(v1), v2_mount, tuple(v2), tuple(subtree), tuple(problems))
