"""What KVM offers guests: KVM_GET_SUPPORTED_CPUID and the feature MSRs, on the system fd.

/proc/cpuinfo says what the host CPU has; this says what KVM will give a guest,
which is what decides whether QEMU can start a named CPU model. Layouts from
include/uapi/linux/kvm.h (x86-64).
"""

from __future__ import annotations

import struct

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.record import record

KVM_GET_SUPPORTED_CPUID = 0xC008AE05  # _IOWR(KVMIO, 0x05, struct kvm_cpuid2)
KVM_GET_MSR_FEATURE_INDEX_LIST = 0xC004AE0A  # _IOWR(KVMIO, 0x0a, struct kvm_msr_list)
KVM_GET_MSRS = 0xC008AE88  # _IOWR(KVMIO, 0x88, struct kvm_msrs), on the system fd: feature MSRs
ENTRY = struct.Struct("=IIIIIII12x")  # kvm_cpuid_entry2: function, index, flags, eax, ebx, ecx, edx, pad
SIGNIFICANT_INDEX = 1  # KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry is for one subleaf
REG = {"eax": 3, "ebx": 4, "ecx": 5, "edx": 6}


@record
class KvmCpuid:
    entries: tuple  # (function, index, flags, eax, ebx, ecx, edx)
    msrs: dict  # feature MSR index -> value

    def cpuid_bit(self, leaf: int, subleaf: int, reg: str, bit: int) -> bool:
        for e in self.entries:
            if e[0] == leaf and (e[1] == subleaf or not e[2] & SIGNIFICANT_INDEX):
                return bool(e[REG[reg]] >> bit & 1)
        return False

    def msr_bit(self, index: int, bit: int) -> bool:
        return index in self.msrs and bool(self.msrs[index] >> bit & 1)


def read_kvm_cpuid(host: Host) -> KvmCpuid:
    """Ask /dev/kvm; HostError (with errno) if it cannot be opened or refuses."""
    import os

    fd = host.open_device("dev/kvm")
    try:
        return query_kvm_cpuid(fd)
    except OSError as exc:
        raise HostError("dev/kvm", f"KVM refused the CPUID query: {exc.strerror}", exc.errno) from None
    finally:
        os.close(fd)


def query_kvm_cpuid(fd: int) -> KvmCpuid:
    """KVM's supported CPUID and feature MSRs on an open system descriptor; OSError if refused."""
    import fcntl

    return KvmCpuid(tuple(_supported_cpuid(fd, fcntl)), _feature_msrs(fd, fcntl))


def _supported_cpuid(fd: int, fcntl) -> list[tuple]:
    n = 128
    while True:
        buf = bytearray(8 + ENTRY.size * n)
        struct.pack_into("=II", buf, 0, n, 0)
        try:
            fcntl.ioctl(fd, KVM_GET_SUPPORTED_CPUID, buf, True)
        except OSError as exc:
            if exc.errno == 7 and n < 4096:  # E2BIG: room for more entries
                n *= 2
                continue
            raise
        count = struct.unpack_from("=I", buf)[0]
        return [ENTRY.unpack_from(buf, 8 + ENTRY.size * i) for i in range(count)]


def _feature_msrs(fd: int, fcntl) -> dict[int, int]:
    n = 64
    lst = bytearray(4 + 4 * n)
    struct.pack_into("=I", lst, 0, n)
    try:
        fcntl.ioctl(fd, KVM_GET_MSR_FEATURE_INDEX_LIST, lst, True)
    except OSError:
        return {}  # kernels before 4.17 have no feature MSRs: none offered
    count = struct.unpack_from("=I", lst)[0]
    indices = struct.unpack_from(f"={count}I", lst, 4)
    buf = bytearray(8 + 16 * count)
    struct.pack_into("=II", buf, 0, count, 0)
    for i, index in enumerate(indices):
        struct.pack_into("=IIQ", buf, 8 + 16 * i, index, 0, 0)
    done = fcntl.ioctl(fd, KVM_GET_MSRS, buf, True)
    return {struct.unpack_from("=I", buf, 8 + 16 * i)[0]: struct.unpack_from("=Q", buf, 16 + 16 * i)[0]
            for i in range(min(done, count))}


# IA32_VMX_PROCBASED_CTLS2 (SDM vol. 3 A.3.3): the high half says which secondary controls may
# be 1; bit 25 of the controls is "use TSC scaling".
MSR_VMX_PROCBASED_CTLS2 = 0x48B
TSC_SCALING_BIT = 32 + 25


def vmx_tsc_scaling(kvm_cpuid: KvmCpuid) -> bool | None:
    """Whether KVM's VMX allows TSC scaling; None where KVM lists no VMX feature MSRs (AMD, or
    kvm_intel without nested: the caller falls back on cpuinfo)."""
    if MSR_VMX_PROCBASED_CTLS2 not in kvm_cpuid.msrs:
        return None
    return kvm_cpuid.msr_bit(MSR_VMX_PROCBASED_CTLS2, TSC_SCALING_BIT)


def offered_features(kvm_cpuid: KvmCpuid, features: dict[str, dict]) -> list[str]:
    """Names (of kvmtune's CPU feature table) whose CPUID or MSR bit KVM offers guests."""
    # One pass over the entries, then a lookup per feature (not a scan per feature).
    exact, any_index = {}, {}
    for e in kvm_cpuid.entries:
        if e[2] & SIGNIFICANT_INDEX:
            exact.setdefault((e[0], e[1]), e)
        else:
            any_index.setdefault(e[0], e)
    out = []
    for name, f in features.items():
        if "cpuid" in f:
            leaf, subleaf, reg, bit = f["cpuid"]
            leaf = int(leaf, 16)
            e = exact.get((leaf, subleaf)) or any_index.get(leaf)
            if e is not None and e[REG[reg]] >> bit & 1:
                out.append(name)
        elif kvm_cpuid.msr_bit(int(f["msr"][0], 16), f["msr"][1]):
            out.append(name)
    return sorted(out)
