"""Transparent huge pages: the enabled/defrag selectors and a command-line override."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe import parse
from kvmtune.probe.system import cmdline_values

THP_DIR = "sys/kernel/mm/transparent_hugepage"
KNOBS = ("enabled", "defrag", "shmem_enabled")


@record
class ThpFacts:
    values: dict[str, str | None]  # active choice of each selector, None if absent
    choices: dict[str, tuple[str, ...]]  # what each selector accepts
    cmdline: str | None  # transparent_hugepage= on the kernel command line
    problems: tuple[str, ...] = ()
    captured: bool = True  # False: a snapshot without /sys/kernel/mm/transparent_hugepage

    @property
    def available(self) -> bool:
        return self.values.get("enabled") is not None

    def to_json(self) -> dict:
        return {"available": self.available, **self.values, "cmdline": self.cmdline}


def read_thp(host: Host, cmdline: list[tuple[str, str | None]]) -> ThpFacts:
    values: dict[str, str | None] = {}
    choices: dict[str, tuple[str, ...]] = {}
    problems = []
    for knob in KNOBS:
        try:
            text = host.read_optional(f"{THP_DIR}/{knob}")
        except HostError as exc:
            problems.append(f"/{THP_DIR}/{knob}: {exc.reason}")
            text = None
        values[knob] = parse.bracketed(text) if text else None
        choices[knob] = tuple(w.strip("[]") for w in text.split()) if text else ()
    override = cmdline_values(cmdline, "transparent_hugepage")
    captured = host.live or host.is_dir(THP_DIR)
    return ThpFacts(values, choices, override[-1] if override else None, tuple(problems), captured)
