"""Transparent huge pages: the enabled, defrag and shmem_enabled selectors."""

from __future__ import annotations

from kvmtune.probe.thp import THP_DIR
from kvmtune.profile.schema import THP_KNOBS
from kvmtune.tune.knob import TableKnob, table_field
from kvmtune.tune.registry import kind
from kvmtune.tune.sections import section


@kind
class ThpChange(TableKnob):
    KIND, DIR, TABLE, ORDER = "thp", THP_DIR, THP_KNOBS, 50
    FIELDS = table_field(THP_KNOBS)
    SELECTOR = True
    __slots__ = ()


def plan_thp(profile, facts) -> list[ThpChange]:
    changes = []
    thp = facts.thp
    for knob, (value, node) in profile.thp.items():
        if thp.values.get(knob) is None:
            raise node.error(f"this kernel has no /{THP_DIR}/{knob}")
        if value not in thp.choices[knob]:
            raise node.error(f"this kernel accepts {', '.join(thp.choices[knob])} for {knob}, not {value!r}")
        changes.append(ThpChange(knob, thp.values[knob], value, detail="takes effect for guests started afterwards"))
    return changes


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.thp:
        from kvmtune.probe.thp import read_thp

        out["thp"] = read_thp(host, list(out["cmdline"]))


section("thp", order=50, reads=_read, plan=lambda profile, facts, ctx: plan_thp(profile, facts))
