"""KSM knobs: their order, the unmerge the sticky ones need, and the change types.

The same ordering rules serve apply and rollback (plan_ksm_values), so putting a host
back passes through the same safe sequence as tuning it.
"""

from __future__ import annotations

from kvmtune.probe import parse
from kvmtune.probe.ksm import KSM_DIR
from kvmtune.profile.schema import KSM_KNOBS
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, PENDING, Change
from kvmtune.tune.knob import TableKnob, refused, table_field
from kvmtune.tune.registry import kind
from kvmtune.tune.sections import section

# The kernel refuses these with EBUSY while any page is merged, even with run=0:
# only run=2 (unmerge everything) frees them (observed on 6.18; ksm.rst says the same
# of merge_across_nodes).
STICKY = ("merge_across_nodes", "max_page_sharing")
UNMERGE_WARNING = ("KSM: writing run=2 unmerges every merged page at once; the host needs free "
                   "memory for all of them, or the OOM killer runs (ksm.rst)")


@kind
class KsmChange(TableKnob):
    KIND, DIR, TABLE, ORDER = "ksm", KSM_DIR, KSM_KNOBS, 40
    FIELDS = table_field(KSM_KNOBS)
    __slots__ = ()
    SELECTOR = property(lambda self: self.knob == "advisor_mode")

    # Rollback passes through apply's own ordering rules (unmerge before a sticky knob).
    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        from kvmtune.probe.ksm import read_ksm

        return {"ksm": read_ksm(host)}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        wanted = {r["knob"]: r["original"] for _, r in entries if r["original"] is not None}
        return plan_ksm_values(facts.ksm, wanted, True, warnings) if wanted else []


class KsmUnmerge(KsmChange):
    """run=2 before a sticky knob: a step that journals run's original, as a KsmChange of
    run would (the change that puts run back comes later and finds it recorded)."""

    __slots__ = ()
    target = "ksm run (unmerge first)"

    def __init__(self, before, after, status=None, detail=""):
        super().__init__("run", before, after, status, detail)

    def execute(self, host, ctx) -> None:
        from kvmtune.errors import HostError

        try:
            host.write(self.rel, "2")  # unmerges synchronously, in the write
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.status = CHANGED


def ordered_knobs(knobs) -> list[str]:
    """advisor_mode first (switching it resets pages_to_scan), the advisor's knobs, the
    rest, run last so ksmd starts with its final settings."""
    rank = {"advisor_mode": 0}
    return sorted(knobs, key=lambda k: (rank.get(k, 1 if k.startswith("advisor_") else 3 if k == "run" else 2), k))


def current(ksm, knob: str) -> str | None:
    value = ksm.values.get(knob)
    if value is None:
        return None
    return parse.bracketed(value) if knob == "advisor_mode" else str(value)


def plan_ksm(profile, facts, ctx) -> list[Change]:
    policy = profile.ksm_policy
    if not profile.ksm and policy is None:
        return []
    ksm = facts.ksm
    first = next(iter(profile.ksm.values()))[1] if profile.ksm else policy.src
    if not ksm.available:
        raise first.error("this kernel has no KSM (/sys/kernel/mm/ksm is missing)")
    for key, (_, node) in profile.ksm.items():
        if key not in ksm.values:
            raise node.error(f"this kernel has no /{KSM_DIR}/{key}")
    wanted = {k: v for k, (v, _) in profile.ksm.items()}
    why = ""
    if policy is not None:
        from kvmtune.tune.ksm_policy_plan import policy_target

        decision, why = policy_target(policy, facts, ctx)
        wanted["run"] = decision.run
        if decision.pages_to_scan is not None:
            wanted["pages_to_scan"] = decision.pages_to_scan
    changes = plan_ksm_values(ksm, wanted, profile.allow_unmerge, ctx.warnings)
    for c in changes:
        if why and type(c) is KsmChange and c.knob in ("run", "pages_to_scan") and not c.detail:
            c.detail = why
    return changes


def plan_ksm_values(ksm, wanted: dict, allow_unmerge: bool, warnings: list[str]) -> list[Change]:
    """Shared by apply and rollback: the same ordering rules either way."""
    knobs = {k: KsmChange(k, current(ksm, k), str(v)) for k, v in wanted.items()}
    merged = ksm.get("pages_shared") or 0
    sticky = [k for k in STICKY if k in knobs and knobs[k].status == PENDING]
    run_now = ksm.get("run")
    changes: list[Change] = []
    if sticky and merged:
        if allow_unmerge:
            changes.append(KsmUnmerge(str(run_now), "2", PENDING,
                                      f"{merged} pages merged; {', '.join(sticky)} can change only "
                                      "after they are unmerged"))
            warnings.append(UNMERGE_WARNING)
            if "run" not in knobs and run_now != 2:  # put ksmd back as it was
                knobs["run"] = KsmChange("run", "2", str(run_now), PENDING)
            elif "run" in knobs and knobs["run"].after != "2":
                knobs["run"].status = PENDING
        else:
            for k in sticky:
                knobs[k].status = BLOCKED
                knobs[k].detail = (f"{merged} pages are merged and the kernel refuses the change (EBUSY) "
                                   "until they are unmerged; set ksm.allow_unmerge: true to write run=2 "
                                   "first (needs free memory for every merged page)")
    if "advisor_mode" in knobs and knobs["advisor_mode"].status == PENDING and "pages_to_scan" in knobs:
        knobs["pages_to_scan"].status = PENDING  # the switch resets it (observed)
        knobs["pages_to_scan"].detail = "rewritten: changing advisor_mode resets pages_to_scan"
    return changes + [knobs[k] for k in ordered_knobs(knobs)]


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.ksm or profile.ksm_policy:
        from kvmtune.probe.ksm import read_ksm

        out["ksm"] = read_ksm(host)
    if profile.ksm_policy:
        from kvmtune.tune.ksm_policy_plan import read_policy_facts

        read_policy_facts(host, out)


section("ksm", order=40, reads=_read, plan=plan_ksm)
