"""The KSM pressure policy's one door for callers (``watch --once``, ``kvmtune ksm-policy``).

- ``evaluate(host, profile)``: read MemAvailable, KSM and the last recorded decision, and
  decide (tune.ksm_decide); nothing is written.
- ``apply(host, profile)``: carry the decision out through the engine: under its lock, journaled
  (run and pages_to_scan keep their originals for rollback), read back from the kernel, the
  decision recorded in the journal for verify and check. It acts only on the policy's two
  knobs: the profile's other settings are apply's (or ``watch --reapply``'s) business.

Both return an ``Outcome``; ``changed`` says whether the kernel was written, ``line()`` is the
one line a log or a terminal shows.
"""

from __future__ import annotations

from kvmtune.record import record


@record
class Outcome:
    decision: object  # tune.ksm_decide.Decision (None: the profile has no policy)
    changes: tuple = ()  # the engine's changes (tune.change.Change), applied or planned
    warnings: tuple = ()  # ksmtuned or tuned beside the policy, from the plan
    changed: bool = False  # the kernel was written this time

    def line(self) -> str:
        if self.decision is None:
            return "ksm policy: the profile has none"
        failed = [c for c in self.changes if c.status == "failed"]
        if failed:
            return f"ksm policy: {failed[0].target}: {failed[0].detail}"
        verb = "applied" if self.changed else "holds"
        return f"ksm policy {verb}: {self.decision.reason}"


def policy_only(profile):
    """The profile cut down to its KSM policy: no other section plans, nothing persists. Every
    field with a default goes back to it, so a section added later is cleared without a line here."""
    keep = {"ksm_policy": profile.ksm_policy}
    reset = {f: v for f, v in type(profile)._defaults.items() if f not in keep}
    return profile._replace(sysctl={}, hugepages={}, compact=False, hugetlbfs=(), ksm={}, thp={}, **reset)


def evaluate(host, profile) -> Outcome:
    """The decision now and the changes it would make; nothing written."""
    from kvmtune.tune.engine import plan_profile

    if profile.ksm_policy is None:
        return Outcome(None)
    plan = plan_profile(host, policy_only(profile), persist=False)
    return Outcome(_decision(plan), tuple(plan.changes), tuple(plan.warnings))


def apply(host, profile, *, wait: bool = False) -> Outcome:
    """Decide under the engine's lock and carry it out (root on a live host)."""
    from kvmtune.tune.change import DONE
    from kvmtune.tune.engine import apply_profile

    if profile.ksm_policy is None:
        return Outcome(None)
    plan = apply_profile(host, policy_only(profile), persist=False, wait=wait)
    return Outcome(_decision(plan), tuple(plan.changes), tuple(plan.warnings),
                   any(c.status in DONE for c in plan.changes))


def _decision(plan):
    return plan.shared.get("ksm_decision")
