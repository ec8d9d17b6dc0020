"""Plans from facts: a profile's (apply, plan, verify) and a journal's (rollback).

Both are pure: the read phase (tune.facts) has already read everything, so the ordering
rules each subsystem owns are tested on hand-made facts. Apply's order is the sections'
declared order (tune.sections): sysctls, pools (larger pages first, per node before totals),
mounts, KSM (advisor first, run last), THP, CPUs, irqbalance, power, KVM module options, then
the files that keep it all at boot, and last the conflicts with other settings (warnings). Rollback runs the
reverse order of the kinds' declared ORDER with the same rules: files, ..., pools, sysctls.
"""

from __future__ import annotations

from kvmtune.tune.change import Plan
from kvmtune.tune.created_dirs import plan_created
from kvmtune.tune.registry import by_kind
from kvmtune.tune.sections import PlanContext, declared


def build_plan(profile, facts, *, persist: bool = True, force: bool = False, judge_last: bool = False) -> Plan:
    """Every change, in the order apply must make them: each declared section's, in its
    declared order (tune.sections); raises ProfileError on bad input. ``judge_last``: verify's
    plan, against a policy's last recorded decision rather than a new one."""
    ctx = PlanContext(persist, force)
    ctx.judge_last = judge_last
    for section in declared():
        ctx.changes += section.plan(profile, facts, ctx)
    plan = Plan(profile, ctx.changes, ctx.warnings)
    plan.notes, plan.shared = ctx.notes, ctx.shared
    return plan


def plan_rollback(records: dict, facts) -> Plan:
    """What puts every journaled target back to its original: each kind's own restore, in the
    reverse of apply's order."""
    warnings: list[str] = []
    changes: list = []
    for kind, entries in reversed(by_kind(records)):
        changes += kind.restore(entries, facts, warnings)
    changes += plan_created(records, facts)  # last: every file and mount is gone from them
    return Plan(None, changes, warnings)
