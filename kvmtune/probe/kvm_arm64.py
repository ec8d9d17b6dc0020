"""Prove /dev/kvm works on an aarch64 host: a VM, a vCPU, and guest code that ends in an MMIO write.

The x86 probe (kvm_ioctl) runs real-mode x86 code; arm64 KVM needs its own sequence:
KVM_CHECK_EXTENSION(KVM_CAP_ARM_VM_IPA_SIZE) for the VM type (0 means the default 40 bits),
KVM_CREATE_VM, guest RAM, KVM_ARM_PREFERRED_TARGET, KVM_CREATE_VCPU, KVM_ARM_VCPU_INIT, the PC
set with KVM_SET_ONE_REG, then KVM_RUN until the guest's store to an address with no memory
behind it comes back as KVM_EXIT_MMIO with the value it computed. The instructions are
GUEST_LISTING, held to an independent assembler by tests/test_arch.py. Every kernel call goes
through an ``ops`` object, so a recorded fake can stand in for the kernel on hosts that are not
aarch64 (this project's CI is x86).
"""

from __future__ import annotations

import struct

from kvmtune.probe.kvm_api import KVM_CHECK_EXTENSION, KVM_GET_API_VERSION, KVM_SET_USER_MEMORY_REGION

KVM_CREATE_VM, KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VCPU, KVM_RUN = 0xAE01, 0xAE04, 0xAE41, 0xAE80
KVM_CAP_ARM_VM_IPA_SIZE = 165
KVM_ARM_PREFERRED_TARGET = 0x8020AEAF  # _IOR(KVMIO, 0xaf, struct kvm_vcpu_init: target + 7 feature words)
KVM_ARM_VCPU_INIT = 0x4020AEAE  # _IOW(KVMIO, 0xae, struct kvm_vcpu_init)
KVM_SET_ONE_REG = 0x4010AEAC  # _IOW(KVMIO, 0xac, struct kvm_one_reg: id, userspace address)
# KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | offsetof(struct kvm_regs, regs.pc) / 4
REG_PC = 0x6030000000100040
KVM_EXIT_MMIO = 6

RAM_ADDR, RAM_SIZE = 0x10000, 0x10000  # guest physical
MMIO_ADDR = 0x20000  # just past the RAM: no memory slot, so a store there exits to user space
MMIO_VALUE = 0x4D544B57  # 0x4d544b56 built by movz/movk, plus one computed by the guest
MAX_RUNS = 4

GUEST_LISTING = """\
    movz x0, #0x2, lsl #16
    movz x1, #0x4b56
    movk x1, #0x4d54, lsl #16
    add x1, x1, #1
    str w1, [x0]
    b .
"""
# The same instructions, encoded by hand from the Arm ARM (little endian, one word each).
GUEST_CODE = struct.pack("<6I", 0xD2A00040, 0xD2896AC1, 0xF2A9AA81, 0x91000421, 0xB9000001, 0x14000000)


class Arm64Result:
    """What the kernel answered, stage by stage; read by kvm.functional as the x86 probe is."""

    def __init__(self):
        self.api_version: int | None = None
        self.elapsed_ms: float | None = None
        self.ipa_bits: int | None = None  # None: the kernel has no KVM_CAP_ARM_VM_IPA_SIZE (40 bits)
        self.target: int | None = None
        self.exits: list[str] = []
        self.mmio: tuple[int, bytes] | None = None  # (address, data) of the guest's write
        self.failed_stage: str | None = None
        self.error: str | None = None
        self.errno: int | None = None

    @property
    def guest_ran(self) -> bool:
        return self.mmio == (MMIO_ADDR, struct.pack("<I", MMIO_VALUE))

    def to_json(self) -> dict:
        import errno

        return {"api_version": self.api_version, "ipa_bits": self.ipa_bits, "target": self.target,
                "exits": list(self.exits),
                "mmio": None if self.mmio is None else {"address": self.mmio[0], "data": self.mmio[1].hex()},
                "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 2),
                "failed_stage": self.failed_stage,
                "errno": errno.errorcode.get(self.errno) if self.errno else None, "error": self.error}


class _Stage(Exception):
    def __init__(self, stage: str, error: str, err: int | None = None):
        super().__init__(error)
        self.stage, self.error, self.errno = stage, error, err


def _call(stage: str, ops, fd: int, request: int, arg=0):
    try:
        return ops.ioctl(fd, request, arg)
    except OSError as exc:
        raise _Stage(stage, exc.strerror or str(exc), exc.errno) from None


def run_arm64_sequence(ops, kvm: int) -> Arm64Result:
    """The whole sequence on an open /dev/kvm descriptor; kernel refusals land in the result."""
    result = Arm64Result()
    try:
        _sequence(ops, kvm, result)
    except _Stage as failure:
        result.failed_stage, result.error, result.errno = failure.stage, failure.error, failure.errno
    return result


def _sequence(ops, kvm: int, result: Arm64Result) -> None:
    result.api_version = _call("get_api_version", ops, kvm, KVM_GET_API_VERSION)
    if result.api_version != 12:
        raise _Stage("get_api_version", f"KVM API version {result.api_version}, expected 12")
    ipa = _call("check_extension", ops, kvm, KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE)
    result.ipa_bits = ipa or None
    # KVM_VM_TYPE_ARM_IPA_SIZE(bits) is the low byte; 0 asks for the 40-bit default.
    vm = _call("create_vm", ops, kvm, KVM_CREATE_VM, ipa & 0xFF)
    try:
        try:
            address = ops.guest_memory(RAM_SIZE, GUEST_CODE)
        except OSError as exc:
            raise _Stage("set_user_memory_region", f"guest memory: {exc.strerror or exc}", exc.errno) from None
        region = struct.pack("=IIQQQ", 0, 0, RAM_ADDR, RAM_SIZE, address)
        _call("set_user_memory_region", ops, vm, KVM_SET_USER_MEMORY_REGION, region)
        init = bytearray(32)
        _call("preferred_target", ops, vm, KVM_ARM_PREFERRED_TARGET, init)
        result.target = struct.unpack_from("=I", init)[0]
        vcpu = _call("create_vcpu", ops, vm, KVM_CREATE_VCPU, 0)
        try:
            _call("vcpu_init", ops, vcpu, KVM_ARM_VCPU_INIT, bytes(init))  # the target, no features
            pc = ops.buffer_address(struct.pack("=Q", RAM_ADDR))
            _call("set_pc", ops, vcpu, KVM_SET_ONE_REG, struct.pack("=QQ", REG_PC, pc))
            size = _call("get_vcpu_mmap_size", ops, kvm, KVM_GET_VCPU_MMAP_SIZE, 0)
            run = ops.map_run(vcpu, size)
            _run(ops, vcpu, run, result)
        finally:
            ops.close(vcpu)
    finally:
        ops.close(vm)


def _run(ops, vcpu: int, run, result: Arm64Result) -> None:
    for _ in range(MAX_RUNS):
        _call("run", ops, vcpu, KVM_RUN, 0)
        reason = struct.unpack_from("=I", run, 8)[0]
        result.exits.append("mmio" if reason == KVM_EXIT_MMIO else str(reason))
        if reason != KVM_EXIT_MMIO:
            raise _Stage("run", f"guest stopped with exit {reason}, not KVM_EXIT_MMIO")
        # struct kvm_run's mmio: phys_addr u64, data[8], len u32, is_write u8 (offset 32)
        phys, data, length, is_write = struct.unpack_from("=Q8sIB", run, 32)
        if is_write:
            result.mmio = (phys, bytes(data[:length]))
            return
    raise _Stage("run", f"no MMIO write in {MAX_RUNS} runs")


class KernelOps:
    """The real kernel: fcntl ioctls, guest RAM in a memfd mapping whose address the kernel names
    in /proc/self/maps (read through the Host, as the x86 probe does)."""

    def __init__(self, host):
        self.host = host
        self.fds: list[int] = []
        self.maps: list = []
        self.ram = None
        self.ram_address = 0

    def ioctl(self, fd: int, request: int, arg=0):
        from kvmtune.probe.kvm_api import ioctl

        if isinstance(arg, bytearray):
            return ioctl(fd, request, arg, mutate=True)
        answer = ioctl(fd, request, arg)
        return answer if isinstance(answer, int) else 0

    def guest_memory(self, size: int, code: bytes) -> int:
        import mmap
        import os

        from kvmtune.errors import HostError

        name = f"kvmtune-arm64-probe-{os.getpid()}"
        memfd = os.memfd_create(name, os.MFD_CLOEXEC)
        self.fds.append(memfd)
        os.ftruncate(memfd, size)
        self.ram = mmap.mmap(memfd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.maps.append(self.ram)
        self.ram[0:len(code)] = code
        try:
            self.ram_address = self.host.mapping_address(name)
        except (HostError, ValueError) as exc:
            raise OSError(0, f"not found in /proc/self/maps: {exc}") from None
        return self.ram_address

    def buffer_address(self, data: bytes) -> int:
        """KVM_SET_ONE_REG reads the value from user memory: the last bytes of the RAM mapping,
        which the guest never touches."""
        offset = len(self.ram) - len(data)
        self.ram[offset:] = data
        return self.ram_address + offset

    def map_run(self, fd: int, size: int):
        import mmap

        run = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.maps.append(run)
        return run

    def close(self, fd: int) -> None:
        import os

        os.close(fd)

    def release(self) -> None:
        import os

        for mapping in reversed(self.maps):
            mapping.close()
        for fd in reversed(self.fds):
            os.close(fd)


def run_arm64_probe(host, device: str = "dev/kvm") -> Arm64Result:
    """Open the device and run the sequence; never raises for kernel refusals."""
    import os
    import time

    from kvmtune.errors import HostError

    start = time.perf_counter()
    try:
        kvm = host.open_device(device)
    except HostError as exc:
        result = Arm64Result()
        result.failed_stage, result.errno, result.error = "open", exc.errno, exc.reason
        return result
    ops = KernelOps(host)
    try:
        result = run_arm64_sequence(ops, kvm)
    finally:
        ops.release()
        os.close(kvm)
    result.elapsed_ms = (time.perf_counter() - start) * 1000
    return result
