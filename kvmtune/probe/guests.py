"""Running KVM guests: every process holding a KVM VM descriptor, and what it runs on.

A guest is found by what it holds, not by its name: a ``anon_inode:kvm-vm`` link in
/proc/PID/fd, so QEMU, crosvm, Firecracker and cloud-hypervisor are all found. Its
RAM comes from smaps and numa_maps (guest_memory), its vCPU threads from their names
(QEMU ``CPU n/KVM``, crosvm ``crosvm_vcpu n``, Firecracker ``fc_vcpu n``,
cloud-hypervisor ``vcpuN``). A process that exits while it is read is dropped; one
the user may not inspect is listed with the reason.
"""

from __future__ import annotations

import errno

from kvmtune.errors import HostError
from kvmtune.host.procs import ProcessGone
from kvmtune.record import record
from kvmtune.grammar import digits, hex_number

VM_FD, VCPU_FD = "anon_inode:kvm-vm", "anon_inode:kvm-vcpu"
VCPU_NAMES = (("CPU ", "/KVM"), ("crosvm_vcpu", ""), ("fc_vcpu", ""), ("vcpu", ""))  # prefix, suffix
UNITS_KB = {"": 1 << 10, "K": 1, "M": 1 << 10, "G": 1 << 20, "T": 1 << 30}  # QEMU's -m: MiB unless told
VMM_NAMES = ("qemu", "crosvm", "firecracker", "cloud-hypervisor", "kvmtool", "lkvm")
KERNEL_WORKERS = ("kvm-", "vhost-")  # kvm-nx-lpage-recovery, kvm-pit, vhost-<pid>
MAX_SMAPS = 64 << 20
MAX_FDS = 65536


@record
class Guest:
    pid: int
    name: str
    vmm: str
    ram_kb: int | None  # what the command line asked for, if it says
    mappings: tuple  # guest_memory.RamMapping of the guest's RAM
    vcpus: tuple  # (index, Thread)
    others: tuple  # the VMM's other threads (emulator, I/O)
    vcpu_fds: int
    ksm: dict | None  # ksm_merging_pages and ksm_stat, where the kernel has them
    libvirt: bool = False  # started by libvirt: hints speak domain XML


@record
class GuestFacts:
    guests: tuple
    hidden: tuple  # (pid, name, reason): looks like a VMM, cannot be inspected
    processes: bool  # False: a snapshot without a process table


def read_guests(host, hugetlbfs: tuple[str, ...], nodes: tuple[int, ...] = ()) -> GuestFacts:
    """``nodes``: the host's NUMA nodes; with one (or none known) every page is on it, and
    numa_maps, which walks every page of the process again, is not read."""
    pids = [int(e) for e in host.listdir("proc") if digits(e)]
    guests, hidden = [], []
    for pid in pids:
        try:
            links = _fd_links(host, pid)
        except HostError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                name = _comm(host, pid)
                if name and any(v in name.lower() for v in VMM_NAMES):
                    hidden.append((pid, name, f"/{exc.rel}: {exc.reason}"))
            continue
        if VM_FD not in links.values():
            continue
        try:
            guests.append(_guest(host, pid, links, hugetlbfs, nodes))
        except ProcessGone:
            continue
        except HostError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                continue  # it exited between the listing and the read
            hidden.append((pid, _comm(host, pid) or "?", f"/{exc.rel}: {exc.reason}"))
    return GuestFacts(tuple(guests), tuple(hidden), bool(pids))


def _fd_links(host, pid: int) -> dict[int, str]:
    """The process's KVM descriptors: fd number -> link text (``anon_inode:kvm-vcpu:3``)."""
    links = {}
    for fd in host.listdir(f"proc/{pid}/fd")[:MAX_FDS]:
        target = host.readlink(f"proc/{pid}/fd/{fd}")
        if target is not None and target.startswith("anon_inode:kvm") and digits(fd):
            links[int(fd)] = target
    return links


def _in_kvm_run(host, pid: int, tid: int, vcpu_of_fd: dict[int, int]) -> int | None:
    """The vCPU a thread is running, from the system call it sits in: ioctl (16) on a vCPU
    descriptor with KVM_RUN (0xae80). Exact for any VMM whose threads are not named; needs
    the right to read /proc/PID/task/TID/syscall (root), and a thread inside a system call."""
    try:
        text = host.read_optional(f"proc/{pid}/task/{tid}/syscall")
    except HostError:
        return None
    words = (text or "").split()
    if len(words) < 3 or words[0] != "16":
        return None
    try:
        fd, request = hex_number(words[1]), hex_number(words[2])
    except ValueError:
        return None
    return vcpu_of_fd.get(fd) if request == 0xAE80 else None


def _comm(host, pid: int) -> str | None:
    try:
        text = host.read_optional(f"proc/{pid}/comm")
    except HostError:
        return None
    return text.strip() if text else None


def _guest(host, pid: int, links: dict[int, str], hugetlbfs: tuple[str, ...], nodes: tuple[int, ...]) -> Guest:
    from kvmtune.probe.guest_memory import apply_numa_maps, guest_ram, parse_smaps  # only with guests

    argv = [a for a in (host.read_optional(f"proc/{pid}/cmdline") or "").split("\0") if a]
    if not argv and not host.exists(f"proc/{pid}"):
        raise ProcessGone(pid)
    comm = _comm(host, pid) or "?"
    vmm = _vmm(argv, comm)
    ram_kb = qemu_ram_kb(argv) if vmm == "qemu" else None
    smaps = host.read_optional(f"proc/{pid}/smaps", limit=MAX_SMAPS)
    if smaps is None:
        raise ProcessGone(pid)
    mappings = guest_ram(parse_smaps(smaps, hugetlbfs), ram_kb)
    if len(nodes) > 1:
        numa_maps = host.read_optional(f"proc/{pid}/numa_maps", limit=MAX_SMAPS)
        if numa_maps:
            mappings = apply_numa_maps(numa_maps, mappings)
    elif nodes:
        mappings = [m._replace(nodes_kb={nodes[0]: m.rss_kb + m.hugetlb_kb}) for m in mappings]
    vcpu_of_fd = {fd: int(t.rpartition(":")[2]) for fd, t in links.items()
                  if t.startswith(VCPU_FD + ":") and digits(t.rpartition(":")[2])}
    vcpus, others = [], []
    for thread in host.threads(pid):
        if thread.comm.startswith(KERNEL_WORKERS):
            continue  # the kernel's own workers in the VM's process: not the VMM's threads
        index = vcpu_index(thread.comm)
        if index is None:
            index = _in_kvm_run(host, pid, thread.tid, vcpu_of_fd)
        if index is None:
            others.append(thread)
        else:
            vcpus.append((index, thread))
    vcpus.sort(key=lambda v: v[0])
    libvirt = any("/libvirt/" in a for a in argv[1:])  # libvirt's monitor socket is under .../libvirt/qemu
    return Guest(pid, guest_name(argv, comm), vmm, ram_kb, tuple(mappings), tuple(vcpus), tuple(others),
                 len(vcpu_of_fd) or sum(1 for t in links.values() if t.startswith(VCPU_FD)), _ksm(host, pid), libvirt)


def _vmm(argv: list[str], comm: str) -> str:
    exe = (argv[0].rsplit("/", 1)[-1] if argv else comm).lower()
    for name in VMM_NAMES:
        if exe.startswith(name):
            return "qemu" if name == "qemu" else name
    return exe or comm


def vcpu_index(comm: str) -> int | None:
    """QEMU's ``CPU 3/KVM``, crosvm's ``crosvm_vcpu 3``, Firecracker's ``fc_vcpu 3``, ``vcpu3``."""
    comm = comm.strip()
    for prefix, suffix in VCPU_NAMES:
        if comm.startswith(prefix) and comm.endswith(suffix):
            number = comm[len(prefix):len(comm) - len(suffix)].strip()
            if digits(number):
                return int(number)
    return None


def guest_name(argv: list[str], comm: str) -> str:
    """QEMU's -name (libvirt writes ``guest=NAME,debug-threads=on``), else the command."""
    for i, arg in enumerate(argv[:-1]):
        if arg in ("-name", "--name"):
            value = argv[i + 1]
            for part in value.split(","):
                if part.startswith("guest="):
                    return part[len("guest="):]
            return value.split(",")[0]
    return comm


def qemu_ram_kb(argv: list[str]) -> int | None:
    """The RAM of ``-m 512``, ``-m 2G`` or ``-m size=4096M,slots=2,maxmem=...`` (MiB by default)."""
    for i, arg in enumerate(argv[:-1]):
        if arg not in ("-m", "--m"):
            continue
        value = argv[i + 1]
        for part in value.split(","):
            part = (part[len("size="):] if part.startswith("size=") else part).upper()
            part = part[:-1] if part.endswith("B") and len(part) > 1 and not digits(part[-2]) else part
            number, unit = (part[:-1], part[-1]) if part[-1:] in "KMGT" else (part, "")
            if digits(number):
                return int(number) * UNITS_KB[unit]
    return None


def _ksm(host, pid: int) -> dict | None:
    try:
        merging = host.read_optional(f"proc/{pid}/ksm_merging_pages")
        stat = host.read_optional(f"proc/{pid}/ksm_stat")
    except HostError:
        return None
    if merging is None and stat is None:
        return None
    out: dict = {}
    if merging is not None and digits(merging.strip()):
        out["merging_pages"] = int(merging.strip())
    for line in (stat or "").splitlines():
        key, _, value = line.partition(" ")
        key, value = key.rstrip(":"), value.strip()
        out[key] = int(value) if digits(value.lstrip("-")) else value
    return out

