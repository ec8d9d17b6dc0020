"""The sections a profile may hold, each declared once by its subsystem, beside its change kind.

A section declares, with ``section(name, order=, reads=, plan=)`` in its own file:
- ``reads(host, profile, persist, out)``: the facts it needs, put into ``out`` (TuneFacts
  fields); it reads nothing the profile does not ask for;
- ``plan(profile, facts, ctx)``: its changes, pure, from those facts (warnings into
  ``ctx.warnings``; what later sections use, such as the CPU split, into ``ctx.shared``);
- ``order``: its place in apply's order. Sections read and plan in that order, so one may
  use what an earlier one read or planned (the files that keep it all at boot come last).
tune.facts.read_for_profile and tune.planner.build_plan only loop over these declarations,
so a new section touches its own file and its schema. A planner without its reads is
refused at import: it would plan against facts nobody read. This module imports no subsystem.
"""

from __future__ import annotations

SECTIONS: dict[str, "Section"] = {}


class Section:
    __slots__ = ("name", "order", "reads", "plan")

    def __init__(self, name: str, order: int, reads, plan):
        self.name, self.order, self.reads, self.plan = name, order, reads, plan


class PlanContext:
    """What one build_plan passes down the sections: the changes so far, in apply's order."""

    __slots__ = ("warnings", "changes", "persist", "force", "shared", "judge_last", "notes")

    def __init__(self, persist: bool, force: bool):
        self.warnings: list[str] = []
        self.changes: list = []
        self.persist, self.force = persist, force
        self.shared: dict = {}
        self.judge_last = False  # verify: a policy's last recorded decision, not a new one
        self.notes: dict = {}  # what the engine journals with the run besides the records (a decision)


def section(name: str, *, order: int, plan, reads) -> Section:
    """Declare a section; TypeError (at import) if a piece is missing or its name is taken."""
    if not isinstance(order, int) or isinstance(order, bool):
        raise TypeError(f"section {name!r}: order is its place in apply's order (an int)")
    if not callable(plan):
        raise TypeError(f"section {name!r} declares no planner")
    if not callable(reads):
        raise TypeError(f"section {name!r} declares a planner but not the facts it needs read (reads=)")
    if name in SECTIONS and SECTIONS[name].plan is not plan:
        raise TypeError(f"section {name!r} is already declared")
    SECTIONS[name] = Section(name, order, reads, plan)
    return SECTIONS[name]


def declared() -> list[Section]:
    """Every section, in apply's order (each subsystem's file imported, as for the kinds)."""
    from kvmtune.tune.registry import load_all

    load_all()
    return sorted(SECTIONS.values(), key=lambda s: (s.order, s.name))


def nothing(host, profile, persist: bool, out: dict) -> None:
    """The reads of a section that plans from what the common reads and earlier sections found."""
