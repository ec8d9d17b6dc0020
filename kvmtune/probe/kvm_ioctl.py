"""Prove /dev/kvm works: create a VM and a vCPU, run real guest instructions.

Flags and files only suggest that KVM works; this asks the kernel. The guest is
12 bytes of 16-bit real-mode code at 0x1000 (the example from the kernel's KVM
API documentation and LWN's "Using the KVM API"):

    mov dx, 0x3f8 ; add al, bl ; add al, '0' ; out dx, al ; mov al, '\\n' ; out dx, al ; hlt

With al = bl = 2 it writes "4\\n" to port 0x3f8 and halts, so a correct run
exits twice with KVM_EXIT_IO and once with KVM_EXIT_HLT. Real mode needs no
page tables, so the same code runs on VT-x, AMD-V and paravirtual backends. The
ioctls themselves are kvm_api's, shared with the bench's long-mode guest.
"""

from __future__ import annotations

import errno
import os
import struct
import time

from kvmtune.errors import HostError
from kvmtune.host.door import Host

from kvmtune.probe.kvm_api import (KVM_CHECK_EXTENSION, KVM_EXIT_HLT, KVM_EXIT_IO, KVM_EXIT_NAMES,
                                   KVM_GET_API_VERSION, Vm, ioctl)

# KVM_CHECK_EXTENSION numbers worth reporting.
CAPS = {"irqchip": 0, "user_memory": 3, "nr_vcpus": 9, "nr_memslots": 10, "irqfd": 32,
        "ioeventfd": 36, "max_vcpus": 66, "nested_state": 157}

GUEST_CODE = bytes([0xBA, 0xF8, 0x03, 0x00, 0xD8, 0x04, ord("0"), 0xEE, 0xB0, ord("\n"), 0xEE, 0xF4])
GUEST_ADDR = 0x1000
GUEST_MEM = 0x4000
EXPECTED_OUTPUT = b"4\n"
MAX_RUNS = 8
TIMEOUT_S = 2.0


class KvmProbe:
    """What the kernel answered, stage by stage (filled in as the probe goes)."""

    def __init__(self):
        self.api_version: int | None = None
        self.caps: dict[str, int] = {}
        self.vm_created = False
        self.vcpu_created = False
        self.exits: list[str] = []
        self.output = b""
        self.elapsed_ms: float | None = None
        self.failed_stage: str | None = None
        self.errno: int | None = None
        self.error: str | None = None
        self.then = None  # what run_kvm_probe's ``then`` answered (or the OSError it raised)
        self.tsc_khz: int | None = None  # KVM_GET_TSC_KHZ on the probe's vCPU (host.migration)
        self.tsc_khz_error: str | None = None

    @property
    def guest_ran(self) -> bool:
        return self.output == EXPECTED_OUTPUT and self.exits[-1:] == ["hlt"]

    def to_json(self) -> dict:
        return {
            "api_version": self.api_version,
            "caps": dict(self.caps),
            "vm_created": self.vm_created,
            "vcpu_created": self.vcpu_created,
            "exits": list(self.exits),
            "guest_output": self.output.decode("latin-1"),
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 2),
            "failed_stage": self.failed_stage,
            "errno": errno.errorcode.get(self.errno) if self.errno else None,
            "error": self.error,
        }


class _Stage(Exception):
    def __init__(self, stage: str, exc: OSError | str):
        self.stage = stage
        self.exc = exc


def run_kvm_probe(host: Host, device: str = "dev/kvm", then=None) -> KvmProbe:
    """Open the device and run the guest; never raises for kernel refusals. ``then(fd)``,
    if given, asks more of the same system descriptor (the device is opened once);
    its answer or its error lands in ``result.then``."""
    result = KvmProbe()
    start = time.perf_counter()
    fds: list[int] = []
    try:
        try:
            kvm = host.open_device(device)
        except HostError as exc:
            raise _Stage("open", OSError(exc.errno, exc.reason)) from None
        fds.append(kvm)
        try:
            _run(host, kvm, fds, result)
        finally:
            if then is not None:
                try:
                    result.then = then(kvm)
                except OSError as exc:
                    result.then = exc
    except _Stage as failure:
        result.failed_stage = failure.stage
        if isinstance(failure.exc, OSError):
            result.errno = failure.exc.errno
            result.error = failure.exc.strerror or str(failure.exc)
        else:
            result.error = failure.exc
    finally:
        for fd in reversed(fds):
            os.close(fd)
        result.elapsed_ms = (time.perf_counter() - start) * 1000
    return result


def _ioctl(stage: str, fd: int, request: int, arg=0):
    return _at(stage, ioctl, fd, request, arg)


def _at(stage: str, call, *args, **kwargs):
    """``call(...)``, with a kernel refusal named by the stage it stopped."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise _Stage(stage, exc) from None


def _run(host: Host, kvm: int, fds: list[int], result: KvmProbe) -> None:
    import mmap

    result.api_version = _ioctl("get_api_version", kvm, KVM_GET_API_VERSION)
    if result.api_version != 12:
        raise _Stage("get_api_version", f"KVM API version {result.api_version}, expected 12")
    for name, cap in CAPS.items():
        result.caps[name] = _ioctl("check_extension", kvm, KVM_CHECK_EXTENSION, cap)

    vm = _at("create_vm", Vm, kvm)
    result.vm_created = True
    try:
        # Guest RAM: a memfd mapping is page-aligned, and the kernel names its address in
        # /proc/self/maps (no ctypes, and no array module, which imports collections.abc).
        name = f"kvmtune-probe-{os.getpid()}"
        memfd = os.memfd_create(name, os.MFD_CLOEXEC)
        fds.append(memfd)
        os.ftruncate(memfd, GUEST_MEM)
        ram = mmap.mmap(memfd, GUEST_MEM, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            ram[GUEST_ADDR:GUEST_ADDR + len(GUEST_CODE)] = GUEST_CODE
            try:
                address = host.mapping_address(name)
            except (HostError, ValueError) as exc:
                raise _Stage("set_user_memory_region",
                             f"guest memory not found in /proc/self/maps: {exc}") from None
            _at("set_user_memory_region", vm.add_memory, 0, GUEST_MEM, address)
            vcpu = _at("create_vcpu", vm.create_vcpu)
            result.vcpu_created = True
            _ask_tsc_khz(vcpu, result)
            _setup_registers(vcpu)
            _run_guest(vcpu, result)
        finally:
            ram.close()  # KVM holds its own reference to the pages until the VM is closed
    finally:
        vm.close()


def _ask_tsc_khz(vcpu, result: KvmProbe) -> None:
    """The TSC frequency KVM gives this vCPU: a fresh vCPU gets the host's (kvm_arch_vcpu_create
    sets it from the host's tsc_khz), measured by the kernel, not by us. A kernel without
    KVM_CAP_GET_TSC_KHZ refuses; that is not the probe failing."""
    try:
        khz = vcpu.tsc_khz()
    except OSError as exc:
        result.tsc_khz_error = exc.strerror or str(exc)
        return
    result.tsc_khz = khz if khz > 0 else None


def _setup_registers(vcpu) -> None:
    sregs = _at("get_sregs", vcpu.get_sregs)
    struct.pack_into("=Q", sregs, 0, 0)  # cs.base = 0
    struct.pack_into("=H", sregs, 12, 0)  # cs.selector = 0
    _at("set_sregs", vcpu.set_sregs, sregs)
    # rflags bit 1 is reserved-set
    _at("set_regs", vcpu.set_regs, rax=2, rbx=2, rip=GUEST_ADDR, rflags=0x2)


def _run_guest(vcpu, result: KvmProbe) -> None:
    # The C module behind ``signal``: the same calls, without the enum import (~8 ms).
    import _signal as signal

    def _timeout(signum, frame):
        raise TimeoutError

    # A guest that never exits would block KVM_RUN forever: a timer interrupts it.
    # Signals can only be set from the main thread; elsewhere the run goes untimed.
    try:
        old = signal.signal(signal.SIGALRM, _timeout)
    except ValueError:
        old = None
    else:
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
    try:
        for _ in range(MAX_RUNS):
            reason = _at("run", vcpu.run)
            result.exits.append(KVM_EXIT_NAMES.get(reason, str(reason)))
            if reason == KVM_EXIT_IO:
                _, size, port, count, offset = vcpu.io()
                if port == 0x3F8:
                    result.output += bytes(vcpu.run_page[offset:offset + size * count])
                continue
            if reason != KVM_EXIT_HLT:
                raise _Stage("run", f"guest stopped with exit {result.exits[-1]}")
            break
        if not result.guest_ran:
            raise _Stage("run", f"guest wrote {result.output!r}, expected {EXPECTED_OUTPUT!r}")
    except TimeoutError:
        raise _Stage("run", f"guest did not exit within {TIMEOUT_S:g} s") from None
    finally:
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
