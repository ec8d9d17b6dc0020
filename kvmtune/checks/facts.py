"""Everything check reads, each piece read once and only when a check asks for it."""

from __future__ import annotations

from functools import cached_property

from kvmtune.host import Host


class Facts:
    """Lazy view of one host; checks and the JSON ``host`` object share it."""

    def __init__(self, host: Host, as_user: str | None = None):
        self.host = host
        self.as_user = as_user
        self._nodes: dict = {}

    @cached_property
    def cmdline(self):
        from kvmtune.probe.system import read_cmdline
        return read_cmdline(self.host)

    @cached_property
    def mounts(self):
        from kvmtune.probe.system import read_mounts
        return read_mounts(self.host)

    @cached_property
    def meminfo(self):
        from kvmtune.probe.system import read_meminfo
        return read_meminfo(self.host)

    @cached_property
    def cpu(self):
        from kvmtune.probe.cpu import read_cpu
        return read_cpu(self.host)

    @cached_property
    def modules(self):
        from kvmtune.probe.kvm import read_kvm_modules
        return read_kvm_modules(self.host)

    @cached_property
    def dev_captured(self) -> bool:
        """A snapshot may not hold /dev at all: then a missing node proves nothing."""
        return self.host.live or self.host.is_dir("dev")

    def node(self, name: str):
        """A device node of probe.devices.NODES, read once."""
        if name not in self._nodes:
            from kvmtune.probe.devices import read_node
            self._nodes[name] = read_node(self.host, name)
        return self._nodes[name]

    @cached_property
    def kvm_probe(self):
        """The functional probe; None on a snapshot or without /dev/kvm."""
        if not self.host.live or not self.node("kvm").exists:
            return None
        from kvmtune.probe.kvm_ioctl import run_kvm_probe
        return run_kvm_probe(self.host)

    @cached_property
    def kvm_features(self) -> list[str] | None:
        """Named CPU features KVM offers guests (live hosts whose /dev/kvm answers)."""
        if not self.host.live or not self.node("kvm").exists:
            return None
        from kvmtune.cpumodels.table import features
        from kvmtune.errors import HostError
        from kvmtune.probe.kvm_cpuid import offered_features, read_kvm_cpuid

        try:
            return offered_features(read_kvm_cpuid(self.host), features())
        except HostError:
            return None

    @cached_property
    def virt_refusals(self) -> list[str]:
        """What the kernel logged about VT-x/AMD-V being off (live hosts; read only when asked)."""
        if not self.host.live:
            return []
        needles = ("disabled by bios", "disabled (by bios)", "not enabled (by bios)", "no hardware support",
                   "vmx not supported", "svm not supported", "not fully enabled")
        return [line for line in self.host.kernel_log() if any(n in line.lower() for n in needles)][-3:]

    @cached_property
    def cgroups(self):
        from kvmtune.probe.cgroups import read_cgroups
        return read_cgroups(self.host, self.mounts)

    @cached_property
    def iommu(self):
        from kvmtune.probe.iommu import read_iommu
        return read_iommu(self.host, self.cmdline)

    @cached_property
    def vulns(self):
        from kvmtune.probe.vulns import read_vulns
        return read_vulns(self.host)

    @cached_property
    def numa(self):
        from kvmtune.probe.numa import read_numa
        return read_numa(self.host, self.cpu.online)

    @cached_property
    def hugepages(self):
        from kvmtune.probe.hugepages import read_hugepages
        return read_hugepages(self.host, self.numa, self.meminfo[0], self.mounts, self.cmdline)

    @cached_property
    def thp(self):
        from kvmtune.probe.thp import read_thp
        return read_thp(self.host, self.cmdline)

    @cached_property
    def ksm(self):
        from kvmtune.probe.ksm import read_ksm
        return read_ksm(self.host)

    def memory_json(self) -> dict:
        values, problem = self.meminfo
        keys = ("MemTotal", "MemFree", "MemAvailable", "Hugetlb", "HugePages_Total",
                "HugePages_Free", "Hugepagesize", "AnonHugePages")
        out = {k: values.get(k) for k in keys}
        out["problem"] = problem
        out["hugepages"] = self.hugepages.to_json()
        out["thp"] = self.thp.to_json()
        return out

    def _cpu_json(self) -> dict:
        out = self.cpu.to_json()
        if self.kvm_features is not None:
            out["kvm_features"] = self.kvm_features  # so fleet results can judge CPU models
        return out

    def to_json(self) -> dict:
        """The ``host`` object of ``check --json``."""
        hostname = self.host.read_optional("proc/sys/kernel/hostname")
        return {
            "hostname": hostname.strip() if hostname else None,
            "root": self.host.root,
            "live": self.host.live,
            "cpu": self._cpu_json(),
            "numa": self.numa.to_json(),
            "memory": self.memory_json(),
            "ksm": self.ksm.to_json(),
            "kvm": {"modules": self.modules.to_json(),
                    "device": self.node("kvm").to_json()},
        }
