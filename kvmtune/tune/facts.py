"""The read phase of apply, plan, verify and rollback: every host read the planners need.

Planners are pure functions of a profile (or a journal) and these facts, so their rules
are tested without a host tree. Only what the profile or the journal names is read:
``apply`` of a sysctl-only profile reads no pools, mounts or KSM files.
"""

from __future__ import annotations

from kvmtune.record import record


@record
class TuneFacts:
    # A tree 'kvmtune snapshot' captured: the paths it looked for and found absent (None: the live
    # kernel, or a tree that is the whole host), so a path missing from it was not captured.
    capture: frozenset | None = None
    sysctl: dict = {}  # name -> current value (None: absent)
    sysctl_names: tuple = ()  # every sysctl on the host, read only when a named one is absent
    journaled_sysctls: tuple = ()  # the sysctls the journal holds originals for (kvmtune's files name them)
    pools: dict = {}  # (size_kb, node or None) -> current page count text
    hugepages: object = None  # probe.hugepages.HugepageFacts
    numa: object = None  # probe.numa.NumaFacts
    meminfo: dict = {}
    cmdline: tuple = ()
    mounts: tuple = ()  # probe.system.Mount of every mount
    paths: dict = {}  # mount path -> host.PathState
    accounts: dict = {}  # ("user" | "group", name) -> id or None
    daemons: tuple = ()  # libvirt daemons present (to restart after a new mount)
    ksm: object = None  # probe.ksm.KsmFacts
    thp: object = None  # probe.thp.ThpFacts
    files: dict = {}  # own file id -> host.FileState or None
    file_dirs: dict = {}  # own file id -> parent directories that do not exist
    fstab: str | None = None
    owners: object = None  # tune.conflicts.Owners
    cores: tuple = ()  # online CPUs grouped by core (probe.topology)
    irqs: dict = {}  # irq -> (smp_affinity_list CPUs, effective CPUs or None)
    masks: dict = {}  # "default_smp_affinity" | "workqueue" -> current hex mask text
    power: object = None  # probe.power.PowerFacts
    boost_knob: tuple | None = None  # ("boost" | "no_turbo", current text)
    resume_latency: dict = {}  # CPU -> pm_qos_resume_latency_us text
    module_params: dict = {}  # KVM module -> {parameter: effective value}; absent: not on this host
    knobs: dict = {}  # rollback: journal key -> current value of a knob (sysctl, pool, THP, CPU, power)
    boot_loader: object = None  # probe.boot_loader.BootLoader (None: not read, --no-persist)
    bls: dict = {}  # Boot Loader Specification entry file name -> text ({}: the host boots otherwise)
    irqbalance: tuple | None = None  # (environment file, text) where irqbalance is installed
    shared: dict = {}  # rollback: irqbalance environment file -> current text
    created_dirs: tuple = ()  # rollback: the journaled directories kvmtune created that exist now
    journaled: dict = {}  # journal key -> original, of the shared files (the proof of kvmtune's lines)
    sriov: dict = {}  # PF as the profile names it (rollback: its address) -> tune.sriov.PfState or None
    iommu: object = None  # tune.iommu.IommuState: the CPU vendor and the running kernel's IOMMU
    vfio: object = None  # probe.vfio_bind.VfioBindFacts (None: the profile binds no device)
    ksm_last: dict | None = None  # the KSM policy's last decision, as the journal holds it
    fragmentation: object = None  # probe.buddy.Fragmentation (pool growth is warned against it)
    read_at: str = ""  # when the policy's facts were read (its decision records it)
    cpu: object = None  # probe.cpu.CpuFacts, for the boot section (vendor, invariant TSC)
    itlb_multihit: str | None = None  # the kernel's iTLB multihit verdict, for boot's kvm.nx_huge_pages
    kthreads: tuple = ()  # (pid, comm, CPUs allowed) of movable kernel threads (tune.kthreads)


def read_for_profile(host, profile, persist: bool = True) -> TuneFacts:
    """What the profile's sections need: the command line, then each declared section's own
    reads (tune.sections), in apply's order, so a later one may use what an earlier one read."""
    from kvmtune.probe.system import read_cmdline
    from kvmtune.tune.sections import declared

    out: dict = {"cmdline": tuple(read_cmdline(host)), "capture": _capture(host)}
    for section in declared():
        section.reads(host, profile, persist, out)
    out.pop("online", None)  # a reading aid of the CPU sections, no fact of its own
    return TuneFacts(**out)


def _capture(host) -> frozenset | None:
    manifest = {} if host.live else host.manifest()
    if "captured_at" not in manifest:
        return None
    absent = manifest.get("absent", [])
    return frozenset(p for p in absent if isinstance(p, str)) if isinstance(absent, list) else frozenset()


def online_cpus(host, out: dict) -> tuple:
    """The online CPUs, read once for every section that asks."""
    if "online" not in out:
        from kvmtune.probe.cpu import read_cpu

        out["online"] = tuple(read_cpu(host).online)
    return out["online"]


def read_for_rollback(host, records: dict) -> TuneFacts:
    """What each journaled kind reads to plan its own rollback (records already checked)."""
    from kvmtune.tune.created_dirs import read_created
    from kvmtune.tune.registry import by_kind

    out: dict = read_created(host, records)
    for kind, entries in by_kind(records):
        for name, value in kind.read_rollback(host, entries).items():
            out[name] = {**out[name], **value} if isinstance(value, dict) and name in out else value
    return TuneFacts(**out)


def strip(text: str | None) -> str | None:
    return None if text is None else text.strip()
