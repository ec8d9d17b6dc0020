"""Running KVM guests: every process holding a KVM VM descriptor, and what it runs on.

A guest is found by what it holds, not by its name: a ``anon_inode:kvm-vm`` link in
/proc/PID/fd, so QEMU, crosvm, Firecracker and cloud-hypervisor are all found. Its
RAM comes from smaps and numa_maps (guest_memory), its vCPU threads from their names
(QEMU ``CPU n/KVM``, crosvm ``crosvm_vcpu n``, Firecracker ``fc_vcpu n``,
cloud-hypervisor ``vcpuN``) or, unnamed, from the vCPU descriptor they run (find_vcpus). A process that exits while it is read is dropped; one
the user may not inspect is listed with the reason.
"""

from __future__ import annotations

import errno

from kvmtune.errors import HostError
from kvmtune.host.procs import ProcessGone
from kvmtune.record import record
from kvmtune.grammar import digits, hex_number

VM_FD, VCPU_FD = "anon_inode:kvm-vm", "anon_inode:kvm-vcpu"
# A VFIO group (/dev/vfio/N), an iommufd cdev (/dev/vfio/devices/vfioN, /dev/iommu) or a device fd;
# link texts as the kernel spells them, so the device paths are matched without their leading "/".
VFIO_NODES, VFIO_FD = ("dev/vfio/", "dev/iommu"), "anon_inode:[vfio-device]"


def holds_vfio(target: str) -> bool:
    return target.startswith(VFIO_FD) or (target[:1] == "/" and target[1:].startswith(VFIO_NODES))
VCPU_NAMES = (("CPU ", "/KVM"), ("crosvm_vcpu", ""), ("fc_vcpu", ""), ("vcpu", ""))  # prefix, suffix
UNITS_KB = {"": 1 << 10, "K": 1, "M": 1 << 10, "G": 1 << 20, "T": 1 << 30}  # QEMU's -m: MiB unless told
VMM_NAMES = ("qemu", "crosvm", "firecracker", "cloud-hypervisor", "kvmtool", "lkvm")
KERNEL_WORKERS = ("kvm-", "vhost-")  # by name in snapshots without stat flags: kvm-nx-lpage-recovery, vhost-<pid>
SAMPLES, SAMPLE_GAP = 5, 0.004  # 20 ms at most, only while an unnamed vCPU is still not found
MAX_SMAPS = 64 << 20
MAX_FDS = 65536


@record
class Guest:
    pid: int
    name: str
    vmm: str
    ram_kb: int | None  # what the command line asked for, if it says
    mappings: tuple  # guest_memory.RamMapping of the guest's RAM
    vcpus: tuple  # (index, Thread, found_by: name, kvm_run or running)
    others: tuple  # the VMM's other threads (emulator, I/O)
    vcpu_fds: int
    ksm: dict | None  # ksm_merging_pages and ksm_stat, where the kernel has them
    libvirt: bool = False  # started by libvirt: hints speak domain XML
    vfio: bool = False  # holds a VFIO group or device: all its RAM is pinned (memlock)


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
                    hidden.append((pid, _hidden_name(host, pid, name), f"/{exc.rel}: {exc.reason}"))
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
    """The process's KVM and VFIO descriptors: fd number -> link text (``anon_inode:kvm-vcpu:3``)."""
    links = {}
    for fd in host.listdir(f"proc/{pid}/fd")[:MAX_FDS]:
        target = host.readlink(f"proc/{pid}/fd/{fd}")
        if target is not None and (target.startswith("anon_inode:kvm") or holds_vfio(target)) and digits(fd):
            links[int(fd)] = target
    return links


def _syscall(host, pid: int, tid: int, vcpu_of_fd: dict[int, int]):
    """Where a thread is, from /proc/PID/task/TID/syscall: ("kvm_run", vCPU) in ioctl (16) with
    KVM_RUN (0xae80) on a vCPU descriptor; ("running", None) on a CPU, where the kernel cannot say;
    ("other", None) in another call; None if unreadable (it needs the right to ptrace)."""
    try:
        text = host.read_optional(f"proc/{pid}/task/{tid}/syscall")
    except HostError:
        return None
    words = (text or "").split()
    if words[:1] == ["running"]:
        return "running", None
    if len(words) < 3 or words[0] != "16":
        return None if not words else ("other", None)
    try:
        fd, request = hex_number(words[1]), hex_number(words[2])
    except ValueError:
        return "other", None
    return ("kvm_run", vcpu_of_fd[fd]) if request == 0xAE80 and fd in vcpu_of_fd else ("other", None)


def find_vcpus(host, pid: int, threads, vcpu_of_fd: dict[int, int]) -> tuple[list, list]:
    """(vCPUs as (index, Thread, found_by), the other threads). A thread named like a vCPU is one;
    an unnamed one is found in KVM_RUN on a vCPU descriptor. A busy vCPU is on a CPU, where its
    syscall file reads only "running", so a live host is sampled again (a preempted vCPU shows its
    ioctl); a thread running in every sample, when exactly as many such threads are left as vCPU
    descriptors, is taken for a vCPU, in thread order (QEMU starts vCPU threads in index order).
    Kernel workers in the thread group are neither: the kernel forks them from a vCPU thread inside
    KVM_RUN, so their syscall file shows that ioctl too."""
    import time

    found: dict[int, tuple] = {}
    unnamed = []
    own = [t for t in threads if not t.kernel and not t.comm.startswith(KERNEL_WORKERS)]
    for thread in own:
        index = vcpu_index(thread.comm)
        if index is None:
            unnamed.append(thread)
        else:
            found[thread.tid] = (index, thread, "name")
    missing = set(vcpu_of_fd.values()) - {v[0] for v in found.values()}
    always_running = {t.tid for t in unnamed}
    for sample in range(SAMPLES if host.live else 1):
        if not missing:
            break
        if sample:
            time.sleep(SAMPLE_GAP)
        for thread in unnamed:
            if thread.tid in found:
                continue
            where = _syscall(host, pid, thread.tid, vcpu_of_fd)
            if where is None or where[0] != "running":
                always_running.discard(thread.tid)
            if where is not None and where[0] == "kvm_run" and where[1] in missing:
                found[thread.tid] = (where[1], thread, "kvm_run")
                missing.discard(where[1])
    left = [t for t in unnamed if t.tid in always_running and t.tid not in found]
    if missing and len(left) == len(missing):
        for thread, index in zip(sorted(left, key=lambda t: t.tid), sorted(missing)):
            found[thread.tid] = (index, thread, "running")
    vcpus = sorted(found.values(), key=lambda v: v[0])
    return vcpus, [t for t in own if t.tid not in found]


def _hidden_name(host, pid: int, comm: str) -> str:
    """A guest's name where its descriptors are refused: the command line stays world-readable
    (unless /proc is mounted hidepid=)."""
    try:
        argv = [a for a in (host.read_optional(f"proc/{pid}/cmdline") or "").split("\0") if a]
    except HostError:
        return comm
    return guest_name(argv, comm)


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
    vcpus, others = find_vcpus(host, pid, host.threads(pid), vcpu_of_fd)
    libvirt = any("/libvirt/" in a for a in argv[1:])  # libvirt's monitor socket is under .../libvirt/qemu
    return Guest(pid, guest_name(argv, comm), vmm, ram_kb, tuple(mappings), tuple(vcpus), tuple(others),
                 len(vcpu_of_fd) or sum(1 for t in links.values() if t.startswith(VCPU_FD)), _ksm(host, pid), libvirt,
                 any(holds_vfio(t) for t in links.values()))


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

