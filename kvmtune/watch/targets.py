"""verify for machines: each target of a profile with what it should be, what it is, its status
and who changed it; which of them a watch may put back.

A target's status: ``ok``; ``missing`` (the knob or file is not there); ``pending-reboot`` or
``pending-restart`` (a setting that takes effect then); ``drifted`` (anything else that
differs). Only runtime knobs (sysctls, run-time pools, KSM, THP, CPU masks and IRQs, power)
are put back by ``watch --reapply``: a file, a mount, a kernel argument or a pool reserved at
boot is the operator's to settle.
"""

from __future__ import annotations

OK, DRIFTED, MISSING = "ok", "drifted", "missing"
PENDING_REBOOT, PENDING_RESTART = "pending-reboot", "pending-restart"
STATUSES = (OK, DRIFTED, PENDING_REBOOT, PENDING_RESTART, MISSING)


def status_of(change, owners=None) -> str:
    from kvmtune.tune import change as base
    from kvmtune.tune.by_hand import ByHandChange
    from kvmtune.tune.irqbalance import IrqbalanceChange

    if isinstance(change, IrqbalanceChange):
        # Its file is kvmtune's business, the daemon reads it when it starts: a running irqbalance
        # without the ban in its environment has yet to be restarted (watch.owners reads it).
        if change.status != base.OK:
            return DRIFTED
        running = owners is not None and "irqbalance" in owners.pids
        return PENDING_RESTART if running and not owners.irqbalance_ban else OK
    if change.status == base.OK:
        return OK
    if change.before is None and change.after is not None and not isinstance(change, ByHandChange):
        return MISSING
    if change.WHOLE_TEXT:  # a file kvmtune wrote, edited since: drift whenever it takes effect
        return DRIFTED
    if change.when == base.REBOOT or change.status == base.PENDING_REBOOT:
        return PENDING_REBOOT
    if change.when == base.RESTART or change.status == base.PENDING_RESTART:
        return PENDING_RESTART
    return DRIFTED


def is_target(change) -> bool:
    """A step of a plan (KSM's unmerge before a sticky knob) is no target of the profile."""
    from kvmtune.tune.ksm import KsmUnmerge

    return not isinstance(change, KsmUnmerge)


def runtime(change) -> bool:
    """Whether ``watch --reapply`` may put it back: a kernel knob that takes effect now."""
    from kvmtune.tune.change import NOW
    from kvmtune.tune.knob import KnobChange
    from kvmtune.tune.pools import PoolChange

    return isinstance(change, KnobChange) and change.when == NOW and not (isinstance(change, PoolChange) and change.boot)


def judge_targets(plan, owners) -> list[dict]:
    """``targets`` of verify's JSON; ``owners`` (watch.owners.OwnerFacts) only where one drifted."""
    from kvmtune.watch.owners import owner_of

    out = []
    for c in plan.changes:
        if not is_target(c):
            continue
        status = status_of(c, owners)
        owner = owner_of(c, owners) if status != OK and owners is not None else None
        out.append({"target": c.target, "want": c.shown(c.after), "have": c.shown(c.before),
                    "status": status, "owner": owner})
    return out


def verify_profile(host, profile, *, persist: bool = True, force: bool = False):
    """(plan, targets, journal profiles): verify's read and judge phases over one profile."""
    from kvmtune.tune import journal as journal_mod
    from kvmtune.tune.engine import plan_profile

    plan = plan_profile(host, profile, persist=persist, force=force, judge_last=True)  # a KSM policy: its last decision
    journal = journal_mod.load(host)
    owners = None
    from kvmtune.tune.irqbalance import IrqbalanceChange

    if any(c.status != "ok" or isinstance(c, IrqbalanceChange) for c in plan.changes):
        from kvmtune.watch.owners import read_owners

        owners = read_owners(host, journal)
    profiles = list(journal.data["profiles"]) if journal is not None else []
    return plan, judge_targets(plan, owners), profiles
