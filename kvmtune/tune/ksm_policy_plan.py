"""The ksm section's policy part: what it reads, and which decision a plan carries out.

Apply and plan (and ``watch``, through tune.ksm_policy) decide anew from the memory
available now, with the last decision as the hysteresis state; verify judges the host
against the last decision kvmtune recorded (``PlanContext.judge_last``), since memory that
moved since then is the policy's next run's business, not drift. A decision that asks for
something else than the recorded one is handed to the engine (``ctx.notes``), which
journals it with the run.
"""

from __future__ import annotations

from kvmtune.tune.ksm_decide import Decision, decide, from_record, to_record


def read_policy_facts(host, out: dict) -> None:
    """MemAvailable now, the last decision, and the time (the journal records when)."""
    import time

    from kvmtune.probe.system import read_meminfo
    from kvmtune.tune.journal import read_ksm_policy

    if not out.get("meminfo"):
        out["meminfo"] = read_meminfo(host)[0]
    out["ksm_last"] = read_ksm_policy(host)[0]
    out["read_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def policy_target(policy, facts, ctx) -> tuple[Decision, str]:
    """(the decision this plan carries out, the detail its changes show)."""
    last = from_record(facts.ksm_last) if facts.ksm_last else None
    if ctx.judge_last and last is not None:
        ctx.shared["ksm_decision"] = last[0]
        return last[0], f"policy's last decision ({last[0].at}): {last[0].reason}"
    running = last[0].run == 1 if last else facts.ksm.get("run") == 1
    try:
        decision = decide(policy, facts.meminfo, running)._replace(at=facts.read_at)
    except ValueError as exc:
        raise policy.src.error(f"the policy cannot decide: {exc}") from None
    ctx.shared["ksm_decision"] = decision
    if last is None or not decision.same_action(last[0]) or last[1] != policy._replace(src=None):
        ctx.notes["ksm_policy"] = to_record(decision, policy)
    how = "no decision recorded yet, decided now" if ctx.judge_last else "decided now"
    return decision, f"policy ({how}): {decision.reason}"
