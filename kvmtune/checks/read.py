"""The read phase of check: every host read happens here, and nowhere after it.

READERS names each fact, the function that reads it and the facts it needs first. The
checks declare the facts they judge (kvmtune.checks.REGISTRY), so ``--only ksm`` reads
KSM and nothing else. A reader that fails for any reason leaves Unknown with the
reason instead of a value: the judges say "unknown", the JSON stays whole.
"""

from __future__ import annotations

import os

from kvmtune.checks.facts import Facts, Unknown
from kvmtune.checks.read_clock import CLOCK_READERS
from kvmtune.checks.read_devices import DEVICE_READERS
from kvmtune.checks.read_memory import MEMORY_READERS
from kvmtune.checks.read_placement import PLACEMENT_READERS
from kvmtune.record import record


@record
class KvmAnswers:
    """What /dev/kvm answered, opened once: the guest run and (if asked) what it offers guests."""

    probe: object  # probe.kvm_ioctl.KvmProbe, or probe.kvm_arm64.Arm64Result on aarch64
    features: tuple | None  # CPU feature names KVM offers guests, None if not asked or refused
    features_problem: str | None = None
    tsc_scaling: bool | None = None  # Intel: VMX secondary controls allow TSC scaling (feature MSRs)


@record
class Access:
    """The invoking user, and whether the kernel lets it open /dev/kvm read-write."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    read_write: bool


class Got:
    """What a reader sees of the facts read before it, and of what was asked for."""

    def __init__(self, values: dict, wanted: set, as_user: str | None):
        self.values, self.wanted, self.as_user = values, wanted, as_user

    def __getattr__(self, name):
        value = self.values.get(name)
        return None if isinstance(value, Unknown) else value


def _hostname(host, got):
    text = host.read_optional("proc/sys/kernel/hostname")
    return text.strip() if text and text.strip() else None


def _cmdline(host, got):
    from kvmtune.probe.system import read_cmdline
    return read_cmdline(host)


def _mounts(host, got):
    from kvmtune.probe.system import read_mounts
    return read_mounts(host)


def _meminfo(host, got):
    from kvmtune.probe.system import read_meminfo
    return read_meminfo(host)


def _cpu(host, got):
    from kvmtune.probe.cpu import read_cpu
    return read_cpu(host)


def _modules(host, got):
    from kvmtune.probe.kvm import read_kvm_modules
    return read_kvm_modules(host, got.cmdline or [])


def _node(name):
    def read(host, got):
        from kvmtune.probe.devices import read_node
        return read_node(host, name)
    return read


def _kvm(host, got):
    """Open /dev/kvm once: run the guest, and ask what it offers guests when that is wanted."""
    if not host.live or got.dev_kvm is None or not got.dev_kvm.exists:
        return None
    arch = got.cpu.arch if got.cpu is not None else "x86_64"
    if arch == "aarch64":
        from kvmtune.probe.kvm_arm64 import run_arm64_probe
        return KvmAnswers(run_arm64_probe(host), None)
    if arch != "x86_64":
        return None  # the guest is x86 machine code: kvm.functional says why it did not run
    from kvmtune.probe.kvm_ioctl import run_kvm_probe

    then = None
    if "kvm_features" in got.wanted:
        def then(fd):
            from kvmtune.cpumodels.table import features
            from kvmtune.probe.kvm_cpuid import offered_features, query_kvm_cpuid, vmx_tsc_scaling
            answers = query_kvm_cpuid(fd)
            return tuple(offered_features(answers, features())), vmx_tsc_scaling(answers)
    probe = run_kvm_probe(host, then=then)
    if isinstance(probe.then, OSError):
        return KvmAnswers(probe, None, f"KVM refused the CPUID query: {probe.then.strerror}")
    if probe.then is None:
        return KvmAnswers(probe, None)
    features, tsc_scaling = probe.then
    return KvmAnswers(probe, features, tsc_scaling=tsc_scaling)


def _no_virt_flag_and_kvm_silent(host, got) -> bool:
    """The slow path: a live host that shows no vmx/svm flag and whose KVM ran no guest."""
    cpu, kvm = got.cpu, got.kvm
    if not host.live or cpu is None or cpu.arch != "x86_64" or cpu.has("vmx") or cpu.has("svm"):
        return False
    return kvm is None or not kvm.probe.guest_ran


def _virt_refusals(host, got):
    if host.live and got.cpu is not None and got.cpu.arch == "aarch64":
        # cpuinfo cannot say whether the kernel runs at EL2: KVM's init lines (kvm [1]: ...) can.
        return tuple(line for line in host.kernel_log() if line.startswith("kvm ["))[-3:]
    if not _no_virt_flag_and_kvm_silent(host, got):
        return None
    needles = ("disabled by bios", "disabled (by bios)", "not enabled (by bios)", "no hardware support",
               "vmx not supported", "svm not supported", "not fully enabled")
    return tuple(line for line in host.kernel_log() if any(n in line.lower() for n in needles))[-3:]


def _cpuid(host, got):
    """VMX and SVM as the CPU itself reports them (CPUID, through py-cpuinfo): Linux >= 5.6
    hides the vmx flag when the firmware locked VT-x off, the CPU still says it has it."""
    if not _no_virt_flag_and_kvm_silent(host, got):
        return None
    from cpuinfo import cpuinfo as pycpuinfo  # slow to import (~0.2 s): only on this path

    cpuid = pycpuinfo.CPUID()
    flags = cpuid.get_flags(cpuid.get_max_extension_support())
    return {"vmx": "vmx" in flags, "svm": "svm" in flags}


def _qemu(host, got):
    from kvmtune.probe.qemu import read_qemu
    return read_qemu(host, got.dpkg_status)  # dpkg's database, where this run read it already


def _accounts(host, got):
    from kvmtune.probe.users import read_accounts
    return read_accounts(host, got.as_user)


def _access(host, got):
    if not host.live or got.dev_kvm is None or not got.dev_kvm.exists:
        return None
    return Access(os.getuid(), os.getgid(), tuple(sorted(set(os.getgroups()))),
                  host.access("dev/kvm", os.R_OK | os.W_OK))


def _cgroups(host, got):
    from kvmtune.probe.cgroups import read_cgroups
    return None if got.mounts is None else read_cgroups(host, got.mounts)


def _iommu(host, got):
    from kvmtune.probe.iommu import read_iommu
    return read_iommu(host, got.cmdline or [])


def _vulns(host, got):
    from kvmtune.probe.vulns import read_vulns
    return read_vulns(host)


def _node_ids(host, got):
    if got.numa is not None:  # the numa facts read the same node list: read it once
        return tuple(n.id for n in got.numa.nodes)
    from kvmtune.probe.numa import read_node_ids
    return read_node_ids(host)


def _pools(host, got):
    from kvmtune.probe.hugepages import read_global_pools
    return read_global_pools(host)


def _numa(host, got):
    from kvmtune.probe.hugepages import empty_sizes
    from kvmtune.probe.numa import read_numa
    pools = got.hugepage_pools
    return read_numa(host, got.cpu.online if got.cpu else None, empty_sizes(pools[0]) if pools else frozenset())


def _hugepages(host, got):
    from kvmtune.probe.hugepages import read_hugepages
    from kvmtune.probe.numa import NumaFacts
    meminfo = got.meminfo[0] if got.meminfo else {}
    return read_hugepages(host, got.numa or NumaFacts(), meminfo, got.mounts, got.cmdline or [], got.hugepage_pools)


def _thp(host, got):
    from kvmtune.probe.thp import read_thp
    return read_thp(host, got.cmdline or [])


def _ksm(host, got):
    from kvmtune.probe.ksm import read_ksm
    return read_ksm(host)


READERS = {
    "hostname": (_hostname, ()),
    "cmdline": (_cmdline, ()),
    "mounts": (_mounts, ()),
    "meminfo": (_meminfo, ()),
    "cpu": (_cpu, ()),
    "modules": (_modules, ("cmdline",)),
    "dev_kvm": (_node("kvm"), ()),
    "dev_vhost_net": (_node("vhost_net"), ()),
    "dev_tun": (_node("tun"), ()),
    "dev_vfio": (_node("vfio"), ()),
    "dev_sev": (_node("sev"), ()),
    "kvm": (_kvm, ("dev_kvm", "cpu")),
    "kvm_features": (lambda host, got: None, ("kvm",)),  # a wish read by _kvm, not a read of its own
    "virt_refusals": (_virt_refusals, ("cpu", "kvm")),
    "cpuid": (_cpuid, ("cpu", "kvm")),
    "accounts": (_accounts, ()),
    "qemu": (_qemu, ("dpkg_status",)),  # only for a whole run's JSON: which QEMU, so fleet results judge CPU models
    "access": (_access, ("dev_kvm",)),
    "cgroups": (_cgroups, ("mounts",)),
    "iommu": (_iommu, ("cmdline",)),
    "vulns": (_vulns, ()),
    "node_ids": (_node_ids, ()),
    "hugepage_pools": (_pools, ()),
    "numa": (_numa, ("cpu", "hugepage_pools")),
    "hugepages": (_hugepages, ("numa", "meminfo", "mounts", "cmdline", "hugepage_pools")),
    "thp": (_thp, ("cmdline",)),
    "ksm": (_ksm, ()),
    **PLACEMENT_READERS,
    **DEVICE_READERS,
    **CLOCK_READERS,
    **MEMORY_READERS,
}


def _describe(exc: BaseException) -> str:
    from kvmtune.errors import HostError

    if isinstance(exc, HostError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:200]


def read_facts(host, names, as_user: str | None = None) -> Facts:
    """Read ``names`` (and what they need), each once; never raises for what the host holds."""
    values: dict = {}
    wanted = set(names)
    got = Got(values, wanted, as_user)

    def need(name: str) -> None:
        if name in values:
            return
        reader, deps = READERS[name]
        for dep in deps:
            need(dep)
        try:
            values[name] = reader(host, got)
        except Exception as exc:  # the read phase's promise: unknown with the reason, never a crash
            if os.environ.get("KVMTUNE_DEBUG") == "1":
                raise
            values[name] = Unknown(_describe(exc))

    # node_ids last (nothing depends on it): when numa is read at all, it is read by then.
    for name in ("hostname", *sorted(names, key=lambda n: n == "node_ids")):
        need(name)
    return Facts(host.root, host.live, as_user, values)
