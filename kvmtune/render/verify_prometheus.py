"""verify (and watch) as node_exporter textfile-collector metrics, written atomically like check's."""

from __future__ import annotations

from kvmtune.render.metrics import Metrics


def render_verify_prometheus(out: dict, now: float) -> str:
    """From verify's JSON result: one series per target, counts per status, the run's time, and
    the profiles the journal says were applied."""
    from kvmtune.watch.targets import DRIFTED, MISSING, STATUSES

    metrics = Metrics()
    profile = out.get("profile") or ""
    metrics.family("kvmtune_verify_drifted", "1 if the target differs from the profile now (drifted or missing), "
                   "else 0.", [({"target": t["target"], "profile": profile}, 1 if t["status"] in (DRIFTED, MISSING) else 0)
                               for t in out["targets"]])
    counts = {s: 0 for s in STATUSES}
    for t in out["targets"]:
        counts[t["status"]] += 1
    metrics.family("kvmtune_verify_targets", "Number of the profile's targets per status.",
                   [({"status": s}, n) for s, n in counts.items()])
    metrics.family("kvmtune_verify_last_run_timestamp_seconds", "When kvmtune verify last ran (Unix time).",
                   [({}, round(now, 3))])
    metrics.family("kvmtune_profile_applied", "1 for each profile kvmtune's journal says was applied here.",
                   [({"profile": p}, 1) for p in out.get("profiles", ())])
    return metrics.text()


def render_policy_prometheus(outcome) -> str:
    """The KSM pressure policy's decision this run (kvmtune.tune.ksm_policy's Outcome)."""
    decision = outcome.decision
    metrics = Metrics()
    metrics.family("kvmtune_ksm_policy_run", "KSM run as the pressure policy decided it: 1 on, 0 off.",
                   [({}, decision.run)])
    if decision.pages_to_scan is not None:
        metrics.family("kvmtune_ksm_policy_pages_to_scan", "pages_to_scan as the pressure policy decided it.",
                       [({}, decision.pages_to_scan)])
    metrics.family("kvmtune_ksm_policy_changed", "1 if this run wrote the policy's decision to the kernel.",
                   [({}, 1 if outcome.changed else 0)])
    return metrics.text()
