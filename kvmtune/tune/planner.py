"""Plans from facts: a profile's (apply, plan, verify) and a journal's (rollback).

Both are pure: the read phase (tune.facts) has already read everything, so the ordering
rules each subsystem owns are tested on hand-made facts. Apply's order: sysctls,
pools (larger pages first, per node before totals), mounts, KSM (advisor first, run
last), THP, CPUs, power, then the files that keep it all at boot. Rollback runs the
reverse order of the kinds' declared ORDER with the same rules: files, ..., pools, sysctls.
"""

from __future__ import annotations

from kvmtune.tune.change import Plan
from kvmtune.tune.conflicts import find_conflicts
from kvmtune.tune.created_dirs import plan_created
from kvmtune.tune.cpus import compute_split, plan_cpus
from kvmtune.tune.irqbalance import plan_irqbalance
from kvmtune.tune.power import plan_power
from kvmtune.tune.files import HEADER
from kvmtune.tune.kvm_modules import modprobe_text
from kvmtune.tune.ksm import plan_ksm
from kvmtune.tune.mounts import plan_mounts
from kvmtune.tune.persist import plan_files
from kvmtune.tune.pools import plan_pools
from kvmtune.tune.registry import by_kind
from kvmtune.tune.sysctl import plan_sysctl
from kvmtune.tune.thp import plan_thp


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
    """What puts every journaled target back to its original: each kind's own restore, in the
    reverse of apply's order."""
    warnings: list[str] = []
    changes: list = []
    for kind, entries in reversed(by_kind(records)):
        changes += kind.restore(entries, facts, warnings)
    changes += plan_created(records, facts)  # last: every file and mount is gone from them
    return Plan(None, changes, warnings)
