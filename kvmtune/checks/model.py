"""What a check says: a stable id, a status, one line of detail, a hint, the evidence."""

from __future__ import annotations

PASS, WARN, FAIL, INFO, SKIP, UNKNOWN = "pass", "warn", "fail", "info", "skip", "unknown"
STATUSES = (PASS, WARN, FAIL, INFO, SKIP, UNKNOWN)
SNAPSHOT = "not available in a snapshot"
TITLES = {
    "cpu.virt": "Hardware virtualization (VT-x / AMD-V)",
    "cpu.vulnerabilities": "CPU vulnerabilities that reach across guests",
    "cpu.isolation": "CPUs isolated for pinned guests",
    "cpu.power": "CPU frequency and idle policy",
    "kvm.device": "/dev/kvm exists",
    "kvm.access": "/dev/kvm is usable by the invoking user",
    "kvm.functional": "KVM runs a guest",
    "kvm.modules": "KVM modules and their effective parameters",
    "devices.vhost_net": "/dev/vhost-net exists",
    "devices.tun": "/dev/net/tun exists",
    "devices.vfio": "/dev/vfio/vfio exists",
    "cgroups": "cgroup controllers for QEMU/libvirt",
    "iommu": "IOMMU for device assignment",
    "iommu.groups": "IOMMU groups a guest can take",
    "pci.acs": "ACS on the bridges above devices",
    "sriov": "SR-IOV virtual functions",
    "secure_guest": "Confidential guests (AMD SEV, Intel TDX)",
    "numa": "NUMA topology",
    "memory.hugepages": "Huge page pools and hugetlbfs mounts",
    "memory.thp": "Transparent huge pages",
    "ksm": "Kernel same-page merging (KSM)",
    "memory.swap": "Swap and vm.swappiness",
    "memory.zswap": "zswap (compressed swap cache)",
    "memory.overcommit": "Memory overcommit against running guests",
    "memory.fragmentation": "Huge pages free memory could still give",
    "kernel.cmdline": "Kernel arguments kvmtune persisted are in effect",
    "guests": "Running guests use the host's tuning",
    "memlock": "Locked-memory limit for guests that pin their RAM (VFIO)",
    "clock": "Clocksource and invariant TSC",
    "clock.tsc": "TSC frequency a migrating guest keeps",
    "ready": "Ready to run KVM guests",
}


class Check:
    __slots__ = ("id", "status", "title", "detail", "hint", "data")

    def __init__(self, id: str, status: str, title: str, detail: str,
                 hint: str | None = None, data: dict | None = None):
        self.id = id
        self.status = status
        self.title = title
        self.detail = detail
        self.hint = hint
        self.data = data if data is not None else {}

    def __repr__(self) -> str:
        return f"Check({self.id!r}, {self.status!r}, {self.detail!r})"

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "title": self.title,
                "detail": self.detail, "hint": self.hint, "data": self.data}


def unknown(check_id: str, title: str, problems, data: dict | None = None) -> Check:
    """A check whose source could not be read: say which and why, never guess."""
    reasons = "; ".join(problems)
    return Check(check_id, UNKNOWN, title, f"could not read: {reasons}", None,
                 {"problems": list(problems), **(data or {})})


def matches(check_id: str, selectors: list[str]) -> bool:
    """A selector is a check id (``kvm.access``) or an area (``kvm``)."""
    area = check_id.split(".", 1)[0]
    return any(s == check_id or s == area for s in selectors)
