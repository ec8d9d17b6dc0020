"""The KVM ioctl layer: request numbers, struct layouts, and a VM with memory slots and vCPUs.

Shared by the check's real-mode probe (kvm_ioctl) and the bench's long-mode guest
(kvm_guest64). Plain fcntl ioctls on descriptors the caller opened through the Host;
every kernel refusal is an OSError the caller turns into its own verdict. Request
numbers are _IO/_IOR/_IOW(KVMIO=0xAE, nr, size), precomputed; layouts are from
include/uapi/linux/kvm.h (x86-64).
"""

from __future__ import annotations

import os
import struct

KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_GET_VCPU_MMAP_SIZE = 0xAE04
KVM_CREATE_VCPU = 0xAE41
KVM_SET_USER_MEMORY_REGION = 0x4020AE46  # _IOW(KVMIO, 0x46, 32-byte region)
KVM_CREATE_IRQCHIP = 0xAE60
KVM_RUN = 0xAE80
KVM_GET_REGS = 0x8090AE81  # _IOR(KVMIO, 0x81, struct kvm_regs: 144 bytes)
KVM_SET_REGS = 0x4090AE82  # _IOW(KVMIO, 0x82, struct kvm_regs)
KVM_GET_SREGS = 0x8138AE83  # _IOR(KVMIO, 0x83, struct kvm_sregs: 312 bytes)
KVM_SET_SREGS = 0x4138AE84
KVM_GET_TSC_KHZ = 0xAEA3  # _IO(KVMIO, 0xa3), on a vCPU: the guest TSC frequency KVM gives it

KVM_EXIT_NAMES = {0: "unknown", 2: "io", 5: "hlt", 6: "mmio", 8: "shutdown", 9: "fail_entry", 17: "internal_error"}
KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO = 2, 5, 6
KVM_CAP_IRQCHIP = 0

REGS_SIZE, SREGS_SIZE = 144, 312
# struct kvm_regs: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags, u64 each
REG_OFFSETS = {name: 8 * i for i, name in enumerate(
    "rax rbx rcx rdx rsi rdi rsp rbp r8 r9 r10 r11 r12 r13 r14 r15 rip rflags".split())}


def ioctl(fd: int, request: int, arg=0, mutate: bool = False):
    import fcntl

    return fcntl.ioctl(fd, request, arg, mutate) if mutate else fcntl.ioctl(fd, request, arg)


class Vcpu:
    """A vCPU descriptor and its shared kvm_run page."""

    def __init__(self, fd: int, run_size: int):
        import mmap

        self.fd = fd
        self.run_page = mmap.mmap(fd, run_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def run(self) -> int:
        """Enter the guest until it exits; the exit reason."""
        ioctl(self.fd, KVM_RUN, 0)
        return struct.unpack_from("=I", self.run_page, 8)[0]

    def io(self) -> tuple[int, int, int, int, int]:
        """The KVM_EXIT_IO details: direction, size, port, count, data offset in the run page."""
        return struct.unpack_from("=BBHIQ", self.run_page, 32)

    def mmio(self) -> tuple[int, int, int]:
        """The KVM_EXIT_MMIO details: guest-physical address, length, 1 for a write."""
        address, = struct.unpack_from("=Q", self.run_page, 32)
        length, is_write = struct.unpack_from("=IB", self.run_page, 48)
        return address, length, is_write

    def get_regs(self) -> bytearray:
        regs = bytearray(REGS_SIZE)
        ioctl(self.fd, KVM_GET_REGS, regs, mutate=True)
        return regs

    def set_regs(self, **values: int) -> None:
        """Set the named general registers (rip, rflags, rax...); the others become 0."""
        regs = bytearray(REGS_SIZE)
        for name, value in values.items():
            struct.pack_into("=Q", regs, REG_OFFSETS[name], value)
        ioctl(self.fd, KVM_SET_REGS, bytes(regs))

    def get_sregs(self) -> bytearray:
        sregs = bytearray(SREGS_SIZE)
        ioctl(self.fd, KVM_GET_SREGS, sregs, mutate=True)
        return sregs

    def set_sregs(self, sregs: bytes) -> None:
        ioctl(self.fd, KVM_SET_SREGS, bytes(sregs))

    def tsc_khz(self) -> int:
        """The vCPU's TSC frequency in kHz: the host's, unless someone set another (KVM_SET_TSC_KHZ)."""
        return ioctl(self.fd, KVM_GET_TSC_KHZ, 0)

    def close(self) -> None:
        self.run_page.close()
        os.close(self.fd)


class Vm:
    """A VM descriptor made on an open /dev/kvm descriptor; close() releases it and its vCPUs."""

    def __init__(self, kvm_fd: int):
        self.kvm_fd = kvm_fd
        self.fd = ioctl(kvm_fd, KVM_CREATE_VM, 0)
        self.slots = 0
        self.vcpus: list[Vcpu] = []

    def add_memory(self, guest_phys: int, size: int, address: int) -> int:
        """Map ``size`` bytes of this process at ``address`` into the guest at ``guest_phys``."""
        # struct kvm_userspace_memory_region: slot, flags, guest_phys_addr, memory_size, userspace_addr
        slot = self.slots
        ioctl(self.fd, KVM_SET_USER_MEMORY_REGION, struct.pack("=IIQQQ", slot, 0, guest_phys, size, address))
        self.slots += 1
        return slot

    def create_irqchip(self) -> None:
        """The in-kernel PIC, IOAPIC and local APICs (before any vCPU)."""
        ioctl(self.fd, KVM_CREATE_IRQCHIP, 0)

    def create_vcpu(self) -> Vcpu:
        fd = ioctl(self.fd, KVM_CREATE_VCPU, len(self.vcpus))
        try:
            vcpu = Vcpu(fd, ioctl(self.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0))
        except OSError:
            os.close(fd)
            raise
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vcpus = []
        os.close(self.fd)
