"""The read phase of apply, plan, verify and rollback: every host read the planners need.

Planners are pure functions of a profile (or a journal) and these facts, so their rules
are tested without a host tree. Only what the profile or the journal names is read:
``apply`` of a sysctl-only profile reads no pools, mounts or KSM files.
"""

from __future__ import annotations

from kvmtune.host.owned import OWNED_FILES
from kvmtune.record import record
from kvmtune.grammar import digits


@record
class TuneFacts:
    # A tree 'kvmtune snapshot' captured: the paths it looked for and found absent (None: the live
    # kernel, or a tree that is the whole host), so a path missing from it was not captured.
    capture: frozenset | None = None
    sysctl: dict = {}  # name -> current value (None: absent)
    sysctl_names: tuple = ()  # every sysctl on the host, read only when a named one is absent
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


def read_for_profile(host, profile, persist: bool = True) -> TuneFacts:
    from kvmtune.probe.system import read_cmdline, read_mounts
    from kvmtune.tune.conflicts import read_owners
    from kvmtune.tune.sysctl import read_sysctl, read_sysctl_names, split_optional

    out: dict = {"cmdline": tuple(read_cmdline(host)), "capture": _capture(host)}
    out["sysctl"] = read_sysctl(host, [split_optional(k)[0] for k in profile.sysctl])
    if None in out["sysctl"].values():  # for "did you mean": what this host does have
        out["sysctl_names"] = read_sysctl_names(host)
    needs_pools = bool(profile.hugepages or profile.hugetlbfs)
    if needs_pools or persist:
        out["mounts"] = tuple(read_mounts(host) or ())
    if needs_pools or persist:
        _pools(host, out)
    if profile.hugetlbfs:
        from kvmtune.tune.mounts import LIBVIRT_DAEMONS

        out["paths"] = {m.path: host.path_state(m.path.lstrip("/")) for m in profile.hugetlbfs}
        out["accounts"] = _accounts(host, profile)
        out["daemons"] = tuple(name for path, name in LIBVIRT_DAEMONS if host.exists(path))
    if profile.ksm:
        from kvmtune.probe.ksm import read_ksm

        out["ksm"] = read_ksm(host)
    if profile.thp:
        from kvmtune.probe.thp import read_thp

        out["thp"] = read_thp(host, list(out["cmdline"]))
    online = _online(host) if profile.cpus is not None or profile.power else ()
    if profile.cpus is not None:
        _cpus(host, out, online)
    if profile.power:
        _power(host, out, online)
    if profile.kvm_modules:
        out["module_params"] = _module_params(host, profile.kvm_modules)
    if persist:
        from kvmtune.tune.bls import read_entries

        from kvmtune.probe.boot_loader import read_boot_loader

        _files(host, out)
        out["bls"] = read_entries(host)
        out["journaled"] = _journaled(host)
        out["boot_loader"] = read_boot_loader(host)
    out["owners"] = read_owners(host, profile)
    return TuneFacts(**out)


def _capture(host) -> frozenset | None:
    manifest = {} if host.live else host.manifest()
    if "captured_at" not in manifest:
        return None
    absent = manifest.get("absent", [])
    return frozenset(p for p in absent if isinstance(p, str)) if isinstance(absent, list) else frozenset()


def _online(host) -> tuple:
    from kvmtune.probe.cpu import read_cpu

    return tuple(read_cpu(host).online)


def _cpus(host, out: dict, online: tuple) -> None:
    from kvmtune.probe import parse
    from kvmtune.probe.numa import read_numa
    from kvmtune.probe.topology import read_cores
    from kvmtune.tune.cpus import MASKS

    out["cores"] = read_cores(host, online)
    if "numa" not in out:
        out["numa"] = read_numa(host, online)
    irqs = {}
    for entry in host.listdir("proc/irq"):
        if not digits(entry):
            continue
        text = host.read_optional(f"proc/irq/{entry}/smp_affinity_list")
        if text is None:
            continue
        effective = host.read_optional(f"proc/irq/{entry}/effective_affinity_list")
        try:
            irqs[int(entry)] = (set(parse.cpulist(text.strip())),
                                set(parse.cpulist(effective.strip())) if effective and effective.strip() else None)
        except ValueError:
            continue
    out["irqs"] = irqs
    out["masks"] = {k: _strip(host.read_optional(rel)) for k, rel in MASKS.items()}
    from kvmtune.tune.irqbalance import read_irqbalance

    out["irqbalance"] = read_irqbalance(host)


def _power(host, out: dict, online: tuple) -> None:
    from kvmtune.probe.power import read_power
    from kvmtune.tune.power import PATHS

    out["power"] = read_power(host, list(out.get("cmdline", ())))
    boost = None
    for knob in ("boost", "no_turbo"):
        value = _strip(host.read_optional(PATHS[knob]))
        if value is not None:
            boost = (knob, value)
            break
    out["boost_knob"] = boost
    latency = {}
    for cpu in online:
        value = _strip(host.read_optional(PATHS["latency"].format(cpu)))
        if value is not None:
            latency[cpu] = value
    out["resume_latency"] = latency


def _module_params(host, modules: dict) -> dict:
    out = {}
    for module in modules:
        base = f"sys/module/{module}/parameters"
        if not host.is_dir(f"sys/module/{module}"):
            continue
        out[module] = {p: _strip(host.read_optional(f"{base}/{p}")) for p in host.listdir(base)}
    return out


def read_for_rollback(host, records: dict) -> TuneFacts:
    """What each journaled kind reads to plan its own rollback (records already checked)."""
    from kvmtune.tune.created_dirs import read_created
    from kvmtune.tune.registry import by_kind

    out: dict = read_created(host, records)
    for kind, entries in by_kind(records):
        for name, value in kind.read_rollback(host, entries).items():
            out[name] = {**out[name], **value} if isinstance(value, dict) and name in out else value
    return TuneFacts(**out)


def _strip(text: str | None) -> str | None:
    return None if text is None else text.strip()


def _pools(host, out: dict) -> None:
    from kvmtune.probe.hugepages import read_hugepages
    from kvmtune.probe.numa import read_numa
    from kvmtune.probe.system import read_meminfo

    meminfo, _ = read_meminfo(host)
    numa = read_numa(host)  # every node's own counters: the engine reads back what it wrote there
    out["meminfo"], out["numa"] = meminfo, numa
    out["hugepages"] = read_hugepages(host, numa, meminfo, list(out["mounts"]), list(out.get("cmdline", ())))


def _accounts(host, profile) -> dict:
    from kvmtune.probe.users import read_accounts

    out = {}
    accounts = read_accounts(host)
    for m in profile.hugetlbfs:
        if m.owner is not None and not digits(m.owner):
            user = accounts.user(m.owner) or (read_accounts(host, m.owner).user(m.owner) if host.live else None)
            out[("user", m.owner)] = user.uid if user else None
        if m.group is not None and not digits(m.group):
            out[("group", m.group)] = accounts.group_id(m.group)
    return out


def _files(host, out: dict) -> None:
    """kvmtune's own files (never through a link) and fstab (through its link, inside the root),
    read as rollback reads them."""
    from kvmtune.tune.files import FileChange
    from kvmtune.tune.fstab import FstabChange

    out.update(FileChange.read_rollback(host, [(fid, {"file": fid}) for fid in OWNED_FILES]))
    out.update(FstabChange.read_rollback(host, []))


def _journaled(host) -> dict:
    """The journaled originals of the files kvmtune shares: only they prove which lines are its own."""
    from kvmtune.tune.journal import load

    journal = load(host)
    return {} if journal is None else {k: r["original"] for k, r in journal.records.items()
                                       if r["type"] in ("fstab", "irqbalance")}
