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
from kvmtune.checks.model import FAIL, PASS, UNKNOWN, WARN

AREA_TITLES = {
    "cpu": "CPU", "kvm": "KVM", "devices": "Devices", "cgroups": "cgroups", "iommu": "IOMMU", "pci": "PCI", "sriov": "SR-IOV",
    "secure_guest": "Confidential guests", "numa": "NUMA", "memory": "Memory", "ksm": "KSM",
    "guests": "Guests", "kernel": "Kernel", "memlock": "Locked memory",
    "clock": "Clock and TSC",
    "ready": "Verdict",
}
STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red", "info": "blue",
          "skip": "dim", "unknown": "magenta"}

Segment = tuple[str, "str | None"]


def layout(report: Report, quiet: bool = False) -> list[tuple]:
    """Rows: ("line", [segments]), ("area", title), ("check", check), ("hint", text)."""
    rows: list[tuple] = []
    facts = report.facts
    if not quiet:
        cpu = facts.known("cpu")
        head: list[Segment] = [("kvmtune check ", "bold")]
        if cpu is not None:
            head.append((f"{cpu.model_name or 'unknown CPU'} ({cpu.vendor or '?'}), "
                         f"{len(cpu.online)} CPUs online", None))
        if report.intents != ("general",):
            head.append((f"  for {', '.join(report.intents)}", "bold"))
        if not facts.live:
            head.append((f"  snapshot {facts.root}", "dim"))
        rows.append(("line", head))
    area = None
    for check in report.checks:
        if quiet and check.status not in (WARN, FAIL, UNKNOWN):  # -q: only what needs doing
            continue
        if check.area != area:
            area = check.area
            rows.append(("area", AREA_TITLES.get(area, area)))
        rows.append(("check", check))
        if check.hint and check.status != PASS:
            rows.append(("hint", check.hint))
    counts = ", ".join(f"{n} {k}" for k, n in report.summary.items() if n)
    rows.append(("line", []))
    verdict = (("READY", "bold green") if report.ready else ("NOT READY", "bold red") if report.judged
               else ("NOT JUDGED", "bold yellow"))
    rows.append(("line", [verdict, (f"  {counts}", None)]))
    return rows


def use_colour(stream) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def render_check_text(report: Report, quiet: bool = False, stream=None,
                      colour: bool | None = None) -> None:
    render_rows(layout(report, quiet), stream or sys.stdout, colour)


def render_rows(rows: list[tuple], stream, colour: bool | None = None) -> None:
    """Rows of layout()'s kinds, to rich on a terminal or as plain text."""
    if colour if colour is not None else use_colour(stream):
        _render_rich(rows, stream)
        return
    out = []
    for kind, value in rows:
        if kind == "line":
            out.append("".join(chunk for chunk, _ in value))
        elif kind == "area":
            out.append(value)
        elif kind == "check":
            out.append(f"  {value.status.upper():7} {value.id:20} {value.detail}")
        else:
            out.append(f"           fix: {value}")
    stream.write("\n".join(out) + "\n")


def hint_lines(hint: str, width: int) -> list[str]:
    """A hint folded to ``width`` between words of prose only: a quoted command ('...')
    stays whole on one line, even past the width, so it can be copied as it is."""
    tokens: list[str] = []
    command: list[str] = []
    for word in hint.split():
        if not command and word.lstrip("(").startswith("'") and not _closes(word.lstrip("(")[1:]):
            command = [word]  # a command opens here and goes on past this word
        elif command:
            command.append(word)
            if _closes(word):
                tokens.append(" ".join(command))
                command = []
        else:
            tokens.append(word)
    tokens += command  # an unclosed quote: the words as they are
    lines: list[str] = []
    line = ""
    for token in tokens:
        if line and len(line) + 1 + len(token) > width:
            lines.append(line)
            line = ""
        line += (" " if line else "") + token
    if line:
        lines.append(line)
    return lines


def _closes(word: str) -> bool:
    """Whether a word ends a quoted command ('...', or '...'. and the like)."""
    return word.rstrip(".,;:)").endswith("'")


def _render_rich(rows: list[tuple], stream) -> None:
    """A grid per check row, so a wrapped detail stays in its column; hints are folded
    by hint_lines (never inside a command) and printed under it."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, force_terminal=True)
    indent = 31  # two spaces, status (7), a space, id (20), a space
    for kind, value in rows:
        if kind in ("line", "area"):
            text = Text(value, style="bold underline") if kind == "area" else Text()
            if kind == "line":
                for chunk, style in value:
                    text.append(chunk, style=style)
            console.print(text)
        elif kind == "check":
            # The detail folded between words only, like a hint: a path or a quoted command in
            # it is never cut (rich would fold a word longer than its column).
            width = max(console.width - indent, 12)
            lines = hint_lines(value.detail, width) or [""]
            head = Text("  ")
            head.append(f"{value.status.upper():7}", style=STYLES[value.status])
            head.append(" ")
            head.append(f"{value.id:20}", style="bold")
            if len(lines[0]) <= width:
                head.append(" " + lines.pop(0))
            console.print(head, soft_wrap=True)
            for line in lines:  # one word longer than the column: its own line, further left
                lead = indent if len(line) <= width else max(0, min(indent, console.width - len(line)))
                console.print(Text(" " * lead + line), soft_wrap=True)
        else:
            width = max(console.width - indent, 12)
            for n, line in enumerate(hint_lines(value, width)):
                lead = " " * (indent - 5) + "fix: " if n == 0 else " " * indent
                if len(line) > width:  # one command longer than the column: its own line, further left
                    if n == 0:
                        console.print(Text(lead.rstrip(), style="dim"))
                    lead = " " * max(0, min(indent, console.width - len(line)))
                console.print(Text(lead + line, style="dim"), soft_wrap=True)
