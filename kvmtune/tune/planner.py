"""Plans from facts: a profile's (apply, plan, verify) and a journal's (rollback).

Both are pure: the read phase (tune.facts) has already read everything, so the ordering
rules each subsystem owns are tested on hand-made facts. Apply's order: sysctls,
pools (larger pages first, per node before totals), mounts, KSM (advisor first, run
last), THP, then the files that keep it all at boot. Rollback runs the reverse order
with the same rules: files, THP, KSM, mounts, pools, sysctls.
"""

from __future__ import annotations

from kvmtune.host.door import FileState
from kvmtune.tune.change import OK, PENDING, Plan
from kvmtune.tune.conflicts import find_conflicts
from kvmtune.tune.cpus import compute_split, plan_cpus
from kvmtune.tune.irqbalance import plan_irqbalance
from kvmtune.tune.power import plan_power
from kvmtune.tune.files import HEADER, FileChange, FstabChange, restore_fstab
from kvmtune.tune.kvm_modules import modprobe_text
from kvmtune.tune.ksm import plan_ksm, plan_ksm_values
from kvmtune.tune.mounts import plan_mount_restore, plan_mounts
from kvmtune.tune.persist import plan_files
from kvmtune.tune.pools import PoolChange, plan_pools
from kvmtune.tune.sysctl import SysctlChange, plan_sysctl
from kvmtune.tune.thp import ThpChange, plan_thp


def build_plan(profile, facts, *, persist: bool = True, force: bool = False) -> Plan:
    """Every change, in the order apply must make them; raises ProfileError on bad input."""
    warnings: list[str] = []
    changes: list = []
    changes += plan_sysctl(profile, facts, warnings)
    changes += plan_pools(profile, facts, force)
    changes += plan_mounts(profile, facts)
    changes += plan_ksm(profile, facts, warnings)
    changes += plan_thp(profile, facts)
    split = compute_split(profile, facts) if profile.cpus is not None else None
    changes += plan_cpus(profile, facts, split, warnings)
    if split is not None and persist:
        changes += plan_irqbalance(profile, facts, split, warnings)
    changes += plan_power(profile, facts, warnings)
    modprobe = modprobe_text(profile, facts, warnings, HEADER) if profile.kvm_modules else None
    if persist:
        changes += plan_files(profile, facts, changes, warnings, modprobe, split)
    elif profile.kvm_modules or profile.cpus is not None:
        warnings.append("--no-persist: the kernel arguments, module options and systemd settings of cpus and "
                        "kvm_modules apply only at boot, so they are not set")
    warnings += find_conflicts(profile, facts)
    return Plan(profile, changes, warnings)


def plan_rollback(records: dict, facts) -> Plan:
    """What puts every journaled target back to its original."""
    warnings: list[str] = []
    changes: list = []
    by_type: dict[str, list[dict]] = {}
    for record in records.values():
        by_type.setdefault(record["type"], []).append(record)
    for record in by_type.get("file", []):
        fid = record["file"]
        original = record["original"]
        after = None if original is None else FileState(**original)
        change = FileChange(fid, facts.files[fid], after, missing=record.get("dirs", ()), detail="restored"
                            if after is not None else "removed")
        leftover = [d for d in change.missing if d not in facts.file_dirs[fid]]
        if change.status == OK and after is None and leftover:
            change.status = PENDING
        changes.append(change)
    for record in sorted(by_type.get("bls", []), key=lambda r: r["entry"]):
        from kvmtune.tune.bls import BlsChange, restored

        current = facts.bls.get(record["entry"])
        if current is not None:  # an entry removed since (an old kernel) has nothing to restore
            changes.append(BlsChange(record["entry"], current, restored(record["original"], current),
                                     detail="options restored"))
    for record in by_type.get("irqbalance", []):
        from kvmtune.tune.irqbalance import IrqbalanceChange, restored as irqbalance_restored

        current = facts.shared.get(record["file"])
        if current is not None:
            changes.append(IrqbalanceChange(record["file"], current, irqbalance_restored(record["original"], current),
                                            detail="irqbalance's ban list restored: restart irqbalance"))
    for record in by_type.get("fstab", []):
        text, warning = restore_fstab(record["original"], facts.fstab)
        changes.append(FstabChange(facts.fstab, text, detail="kvmtune's lines removed"))
        if warning:
            warnings.append(warning)
    from kvmtune.tune.kinds import KINDS

    for kind in ("power", "cpumask", "irq"):  # the reverse of apply's order
        for key, record in sorted((k, r) for k, r in records.items() if r["type"] == kind):
            if record["original"] is not None:
                cls = KINDS[kind]
                changes.append(cls.from_identity(cls.parse_identity(record), facts.knobs.get(key), record["original"]))
    for record in sorted(by_type.get("thp", []), key=lambda r: r["knob"]):
        if record["original"] is not None:
            changes.append(ThpChange(record["knob"], facts.thp.values.get(record["knob"]), record["original"]))
    ksm = {r["knob"]: r["original"] for r in by_type.get("ksm", []) if r["original"] is not None}
    if ksm:
        changes += plan_ksm_values(facts.ksm, ksm, True, warnings)
    for record in sorted(by_type.get("mount", []), key=lambda r: r["path"]):
        changes.append(plan_mount_restore(record, facts))
    # Totals before per-node values: shrinking a total releases pages on every node.
    for record in sorted(by_type.get("pool", []), key=lambda r: (r["node"] is not None, r["node"] or 0, r["size_kb"])):
        if record["original"] is not None:
            current = facts.pools.get((record["size_kb"], record["node"]))
            changes.append(PoolChange(record["size_kb"], record["node"], current, record["original"]))
    for record in by_type.get("sysctl", []):
        if record["original"] is not None:
            changes.append(SysctlChange(record["name"], facts.sysctl.get(record["name"]), record["original"]))
    return Plan(None, changes, warnings)
