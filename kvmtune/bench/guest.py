"""One VM holding every backing, and the calls that run guest routines in it.

The vCPU runs the loop of kvm_guest64; each call fills the mailbox, runs the vCPU
until the guest is back at the loop, and times that from the host. One exit per
call, so a call's overhead (tens of microseconds here) is small next to what it
times (hundreds of milliseconds for a chase).
"""

from __future__ import annotations

import contextlib
import signal
import struct
import time

from kvmtune.bench.hostmem import Mapping
from kvmtune.probe import kvm_guest64 as g64
from kvmtune.probe.kvm_api import (KVM_CAP_IRQCHIP, KVM_CHECK_EXTENSION, KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_NAMES,
                                   Vm, ioctl)

CALL_TIMEOUT_S = 60.0


def cpu_seconds() -> float:
    """This thread's CPU time (CLOCK_THREAD_CPUTIME_ID), the clock every walk and exit is timed by.

    The vCPU is this thread and the kernel accounts guest time to it, so a guest routine's CPU
    time is what it cost; time other tasks ran on this CPU in between is not counted. On this
    shared machine under load, wall time ran 2-3 times the CPU time for the same loop, in the
    guest and natively alike, and varied with the load; the CPU time did not."""
    return time.thread_time()


class GuestFailed(Exception):
    """The guest did not come back to its loop: the host's KVM does not run this mode."""


class BenchVm:
    def __init__(self, kvm_fd: int, regions: list[Mapping]):
        self.program = g64.guest_program()
        code = self.program.assemble()
        addresses, system_size = g64.layout([m.length for m in regions])
        self.mmio_address = g64.mmio_address(system_size)
        self.kvm_fd, self.system_size = kvm_fd, system_size
        self.guest_addresses = dict(zip((m.kind for m in regions), addresses))
        self.system = Mapping("4k", system_size)
        self.vm = None
        try:
            g64.build_system_memory(self.system.view().cast("B"), system_size,
                                    [(a, m.length) for a, m in zip(addresses, regions)], code)
            self.mailbox = self.system.view()
            self.vm = Vm(kvm_fd)
            self.kernel_irqchip = bool(ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP))
            if self.kernel_irqchip:
                try:
                    self.vm.create_irqchip()
                except OSError:
                    self.kernel_irqchip = False
            self.vm.add_memory(0, system_size, self.system.address)
            for address, mapping in zip(addresses, regions):
                self.vm.add_memory(address, mapping.length, mapping.address)
            self.vcpu = self.vm.create_vcpu()
            self.vcpu.set_sregs(g64.long_mode_sregs(self.vcpu.get_sregs()))
            self.vcpu.set_regs(rip=self.program.address("top"), rflags=g64.RFLAGS)
            self._run_to_ready()
        except BaseException:
            self.close()
            raise

    def base(self, kind: str, guest_page: str) -> int:
        """The guest-virtual address of a backing's memory mapped with 2M or 4K guest pages."""
        return self.guest_addresses[kind] + (g64.ALIAS_4K if guest_page == "4K" else 0)

    def call(self, routine: str, count: int, base: int = 0, start: int = 0) -> float:
        """Run one routine to its end; the CPU seconds it took this thread (cpu_seconds)."""
        words = self.mailbox
        words[g64.OP // 8] = self.program.address(routine)
        words[g64.BASE // 8], words[g64.START // 8], words[g64.COUNT // 8] = base, start, count
        began = cpu_seconds()
        self._run_to_ready(user_exits=True)
        return cpu_seconds() - began

    def answers(self) -> tuple[int, int]:
        """What the last chase left: the offset it stopped at and its checksum."""
        return self.mailbox[g64.RESULT // 8], self.mailbox[g64.CHECKSUM // 8]

    def user_exits(self, count: int) -> float:
        """Seconds per exit to this process and back (KVM_RUN in a Python loop)."""
        return self.call("user_pio", count) / count

    def mmio_exits(self, count: int) -> float:
        """Seconds per MMIO exit to this process and back (a write where no memory slot is)."""
        return self.call("mmio", count, self.mmio_address) / count

    def start_fresh(self) -> tuple[float, float, float]:
        """Seconds for KVM_CREATE_VM, the first KVM_CREATE_VCPU (with its run page) and the first
        KVM_RUN of a new VM over this one's system memory, until its guest reports ready. What
        lies between (the memory slot, registers) is set up untimed; the VM is closed after."""
        began = time.perf_counter()
        fresh = Vm(self.kvm_fd)
        created = time.perf_counter()
        try:
            fresh.add_memory(0, self.system_size, self.system.address)
            began_vcpu = time.perf_counter()
            vcpu = fresh.create_vcpu()
            vcpu_made = time.perf_counter()
            vcpu.set_sregs(g64.long_mode_sregs(vcpu.get_sregs()))
            vcpu.set_regs(rip=self.program.address("top"), rflags=g64.RFLAGS)
            with _deadline():
                began_run = time.perf_counter()
                reason = vcpu.run()
                ran = time.perf_counter()
            if reason != KVM_EXIT_IO or vcpu.io()[2] != g64.READY_PORT:
                raise GuestFailed(f"a fresh VM's first run stopped with exit "
                                  f"'{KVM_EXIT_NAMES.get(reason, str(reason))}', not at the guest's loop")
        finally:
            fresh.close()
        return created - began, vcpu_made - began_vcpu, ran - began_run

    def _run_to_ready(self, user_exits: bool = False) -> None:
        """Run until the guest reports ready; with ``user_exits``, resume it after each exit the
        exit routines make on purpose (a port write to USER_PORT, an MMIO write at mmio_address)."""
        with _deadline():
            while True:
                reason = self.vcpu.run()
                if reason == KVM_EXIT_MMIO and user_exits:
                    address = self.vcpu.mmio()[0]
                    if address != self.mmio_address:
                        raise GuestFailed(f"the guest touched unbacked memory at {address:#x}, which it never "
                                          "should")
                    continue
                if reason != KVM_EXIT_IO:
                    raise GuestFailed(self._describe(reason))
                port = self.vcpu.io()[2]
                if port == g64.READY_PORT:
                    return
                if not (user_exits and port == g64.USER_PORT):
                    raise GuestFailed(f"the guest wrote to port {port:#x}, which it never should")

    def _describe(self, reason: int) -> str:
        name = KVM_EXIT_NAMES.get(reason, str(reason))
        try:
            rip = struct.unpack_from("=Q", self.vcpu.get_regs(), 128)[0]
        except OSError:
            rip = None
        where = f" at {rip:#x}" if rip is not None else ""
        return (f"the 64-bit CPL3 guest stopped with exit '{name}'{where}: this host's KVM does not run "
                "long-mode user code as set up here (the kernel log may say why)")

    def close(self) -> None:
        if self.vm is not None:
            self.vm.close()
            self.vm = None
        if getattr(self, "mailbox", None) is not None:
            self.mailbox.release()
            self.mailbox = None
        if self.system.address is not None:
            self.system.free()


@contextlib.contextmanager
def _deadline():
    """A guest that never comes back ends in GuestFailed after CALL_TIMEOUT_S, not in a hang."""
    def timeout(signum, frame):
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, CALL_TIMEOUT_S)
    try:
        yield
    except TimeoutError:
        raise GuestFailed(f"the guest did not return within {CALL_TIMEOUT_S:g} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
