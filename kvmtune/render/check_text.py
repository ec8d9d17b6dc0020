"""The check report for people: grouped by area, colour only on a terminal.

One layout (lines of (text, style) segments), two sinks: rich on a terminal,
plain text otherwise. rich.console takes 75-85 ms to import here, more than
half of the report's budget, and provisioning runs are never on a terminal, so
piped output does not pay for it. Host strings enter rich only as Text, never
as markup, so a "[bold]" inside a sysfs file cannot restyle the report.
"""

from __future__ import annotations

import os
import sys

from kvmtune.checks import Report
from kvmtune.checks.model import PASS

AREA_TITLES = {
    "cpu": "CPU", "kvm": "KVM", "devices": "Devices", "cgroups": "cgroups", "iommu": "IOMMU",
    "secure_guest": "Confidential guests", "numa": "NUMA", "memory": "Memory", "ksm": "KSM",
    "ready": "Verdict",
}
STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "info": "blue",
          "skip": "dim", "unknown": "magenta"}

Segment = tuple[str, "str | None"]


def layout(report: Report, quiet: bool = False) -> list[list[Segment]]:
    lines: list[list[Segment]] = []
    facts = report.facts
    if not quiet:
        cpu = facts.cpu
        head: list[Segment] = [("kvmtune check ", "bold"),
                               (f"{cpu.model_name or 'unknown CPU'} ({cpu.vendor or '?'}), "
                                f"{len(cpu.online)} CPUs online", None)]
        if not facts.host.live:
            head.append((f"  snapshot {facts.host.root}", "dim"))
        lines.append(head)
    area = None
    for check in report.checks:
        if quiet and check.status == PASS:
            continue
        if check.area != area:
            area = check.area
            lines.append([(AREA_TITLES.get(area, area), "bold underline")])
        lines.append([("  ", None), (f"{check.status.upper():7}", STYLES[check.status]),
                      (f" {check.id:20} ", "bold"), (check.detail, None)])
        if check.hint and check.status != PASS:
            lines.append([("           fix: ", "dim"), (check.hint, None)])
    counts = ", ".join(f"{n} {k}" for k, n in report.summary.items() if n)
    lines.append([])
    lines.append([("READY" if report.ready else "NOT READY",
                   "bold green" if report.ready else "bold red"), (f"  {counts}", None)])
    return lines


def use_colour(stream) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def render_check_text(report: Report, quiet: bool = False, stream=None,
                      colour: bool | None = None) -> None:
    stream = stream or sys.stdout
    lines = layout(report, quiet)
    if colour if colour is not None else use_colour(stream):
        from rich.console import Console
        from rich.text import Text

        console = Console(file=stream, highlight=False, force_terminal=True)
        for segments in lines:
            text = Text()
            for chunk, style in segments:
                text.append(chunk, style=style)
            console.print(text)
        return
    stream.write("".join("".join(chunk for chunk, _ in segments) + "\n" for segments in lines))
