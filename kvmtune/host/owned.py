"""What kvmtune may change on a host: the allow-list the host layer checks before every write.

Kernel knobs of the sections it supports, its own files, the one shared file it edits
(fstab), hugetlbfs mount points, and its state. Everything else is refused at the door,
whatever a profile or a state file asks for, so a bug or a tampered state cannot reach
/etc/passwd. The temp file of an atomic write is named from the file it replaces.
"""

from __future__ import annotations

import re

from kvmtune.grammar import mount_path_problem

TEMP_SUFFIX = ".kvmtune-tmp"

STATE_DIR = "var/lib/kvmtune"
STATE_FILE = f"{STATE_DIR}/state.json"
STATE_PARENTS = ("var", "var/lib", STATE_DIR)
# The staged state directory: made whole under this name, then renamed into place.
STAGE = ".kvmtune-stage"
LOCK_FILE = "run/lock/kvmtune.lock"

# kvmtune's own files, by the id the state file knows them by.
OWNED_FILES = {
    "sysctl": "etc/sysctl.d/99-zz-kvmtune.conf",
    "tmpfiles": "etc/tmpfiles.d/kvmtune.conf",
    "grub": "etc/default/grub.d/90-kvmtune.cfg",
    "modprobe": "etc/modprobe.d/kvmtune.conf",
    "systemd": "etc/systemd/system.conf.d/90-kvmtune.conf",
    # The sysctls a --no-persist apply set, for rollback's binding (tune.binding): /run is
    # cleared at reboot exactly when those runtime values vanish.
    "runtime": "run/kvmtune/runtime-sysctls",
    # SR-IOV VF counts at boot: udev sets them as each PF appears, before network agents start.
    "sriov": "etc/udev/rules.d/70-kvmtune-sriov.rules",
    # vfio: vfio-pci loaded at boot, and the devices it must take by address (tune.vfio)
    "vfio-load": "etc/modules-load.d/kvmtune-vfio.conf",
    "vfio-udev": "etc/udev/rules.d/70-kvmtune-vfio.rules",
    # watch --install: the timer that runs 'kvmtune watch --once', and its service.
    "watch-service": "etc/systemd/system/kvmtune-watch.service",
    "watch-timer": "etc/systemd/system/kvmtune-watch.timer",
}
SHARED_FILES = ("etc/fstab", "etc/default/irqbalance", "etc/sysconfig/irqbalance")
# Boot Loader Specification entries (Fedora, RHEL 9.3+): kvmtune edits their options line, as grubby does.
BLS_DIR = "boot/loader/entries"
BLS_ENTRY = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,200}\.conf")
OWNED_DIRS = ("etc", "etc/sysctl.d", "etc/tmpfiles.d", "etc/default", "etc/default/grub.d", "etc/modprobe.d",
              "etc/systemd", "etc/systemd/system.conf.d", "etc/systemd/system",
              *STATE_PARENTS, "run", "run/lock", "run/kvmtune",
              "etc/udev", "etc/udev/rules.d")
OWNED_DIRS += ("etc/modules-load.d",)  # vfio's files

KNOBS = re.compile(
    r"proc/sys/[A-Za-z0-9_][A-Za-z0-9_+@:-]*(?:/[A-Za-z0-9_][A-Za-z0-9_+@:-]*)*"
    r"|sys/kernel/mm/hugepages/hugepages-[0-9]+kB/nr_hugepages"
    r"|sys/devices/system/node/node[0-9]+/hugepages/hugepages-[0-9]+kB/nr_hugepages"
    r"|sys/kernel/mm/ksm/[a-z_]+"
    r"|sys/kernel/mm/transparent_hugepage/(?:enabled|defrag|shmem_enabled)"
    r"|proc/irq/default_smp_affinity|proc/irq/[0-9]+/smp_affinity_list|sys/devices/virtual/workqueue/cpumask"
    r"|sys/devices/virtual/workqueue/writeback/cpumask"
    r"|sys/devices/system/cpu/cpufreq/policy[0-9]+/(?:scaling_governor|energy_performance_preference)"
    r"|sys/devices/system/cpu/cpufreq/boost|sys/devices/system/cpu/intel_pstate/no_turbo"
    r"|sys/devices/system/cpu/cpu[0-9]+/power/pm_qos_resume_latency_us"
    # A PF's SR-IOV files: in its device directory (the bus entry is a link on a live host),
    # or in a snapshot's plain bus directory.
    r"|sys/(?:devices/pci[0-9a-f]{4,8}:[0-9a-f]{2}(?:/[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])+"
    r"|bus/pci/devices/[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])/sriov_(?:numvfs|drivers_autoprobe)"
    # bench's noise section runs the osnoise tracer, and puts these three back
    r"|sys/kernel(?:/debug)?/tracing/(?:current_tracer|tracing_on|osnoise/cpus)")


# A PCI device's driver binding (tune.vfio): its driver_override, and the bus's and drivers'
# bind attributes (Documentation/ABI/testing/sysfs-bus-pci).
PCI_BINDING = re.compile(
    r"(?:sys/devices/pci[0-9a-f]{4,5}:[0-9a-f]{2}(?:/[0-9a-f]{4,5}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7])+"
    r"|sys/bus/pci/devices/[0-9a-f]{4,5}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7])/driver_override"
    r"|sys/bus/pci/drivers/[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}/(?:bind|unbind)|sys/bus/pci/drivers_probe")


def temp_name(rel: str) -> str:
    """``etc/fstab`` -> ``etc/.fstab.kvmtune-tmp``: where an atomic write stages its text."""
    head, _, name = rel.rpartition("/")
    return f"{head}/.{name}{TEMP_SUFFIX}" if head else f".{name}{TEMP_SUFFIX}"


def _untemp(rel: str) -> str | None:
    head, _, name = rel.rpartition("/")
    if name.startswith(".") and name.endswith(TEMP_SUFFIX):
        inner = name[1:-len(TEMP_SUFFIX)]
        return f"{head}/{inner}" if head else inner
    return None


AFFINITY = re.compile(r"proc/[1-9][0-9]{0,9}/status")  # a kernel thread's CPUs (host.affinity)


def is_knob(rel: str) -> bool:
    return KNOBS.fullmatch(rel) is not None


def is_file(rel: str) -> bool:
    return rel in OWNED_FILES.values() or rel == STATE_FILE or _is_staged(rel)


def is_shared(rel: str) -> bool:
    head, _, name = rel.rpartition("/")
    return rel in SHARED_FILES or (head == BLS_DIR and BLS_ENTRY.fullmatch(name) is not None)


def is_mount_dir(rel: str, parent: bool = False) -> bool:
    return mount_path_problem("/" + rel, parent) is None


def _is_staged(rel: str) -> bool:
    """A path inside the staged state directory (see journal.stage_state_dir)."""
    for parent in ("", "var/", "var/lib/"):
        if rel == parent + STAGE or rel.startswith(f"{parent}{STAGE}/"):
            return True
    return False


def allows(op: str, rel: str) -> bool:
    """Whether ``op`` on ``rel`` is kvmtune's to do. ops: knob, file, shared, dir, remove, mount, affinity."""
    if op == "knob":
        return is_knob(rel)
    if op == "file":
        return is_file(rel)
    if op == "shared":
        return is_shared(rel)
    if op == "dir":
        return rel in OWNED_DIRS or is_mount_dir(rel, parent=True) or _is_staged(rel)
    if op == "mount":
        return is_mount_dir(rel)
    if op == "pci":
        return PCI_BINDING.fullmatch(rel) is not None
    if op == "affinity":
        return AFFINITY.fullmatch(rel) is not None
    if op == "remove":
        inner = _untemp(rel)
        if inner is not None:
            return is_knob(inner) or is_file(inner) or is_shared(inner) or PCI_BINDING.fullmatch(inner) is not None \
                or AFFINITY.fullmatch(inner) is not None
        return is_file(rel) or rel in SHARED_FILES
    return False
