"""The plan or result of apply/verify/rollback for people: a table of changes.

Same two sinks as the check report: rich on a terminal, plain text otherwise.
"""

from __future__ import annotations

import sys

from kvmtune.render.check_text import use_colour
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, OK, PENDING, PENDING_REBOOT, PENDING_RESTART, UNDONE

STYLES = {OK: "green", CHANGED: "bold green", PENDING: "yellow", FAILED: "bold red", BLOCKED: "red",
          PENDING_REBOOT: "magenta", PENDING_RESTART: "magenta", UNDONE: "yellow"}


def render_result(out: dict, show_diff: bool = False, stream=None) -> None:
    stream = stream or sys.stdout
    rows = [(c["target"], _short(c["before"]), _short(c["after"]), c["status"], c["detail"] or "")
            for c in out["changes"]]
    if use_colour(stream):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=stream, highlight=False)
        table = Table(show_edge=False, header_style="bold")
        for col in ("target", "before", "after", "status", "detail"):
            table.add_column(col)
        for target, before, after, status, detail in rows:
            table.add_row(Text(target), Text(before), Text(after), Text(status, style=STYLES.get(status)),
                          Text(detail))
        console.print(table)
        for w in out["warnings"]:
            console.print(Text("warning: " + w, style="yellow"))
        console.print(Text(out["msg"], style="bold red" if out["failed"] else "bold"))
    else:
        width = max([len(r[0]) for r in rows] + [6])
        for target, before, after, status, detail in rows:
            stream.write(f"{status.upper():16} {target:{width}}  {before} -> {after}"
                         + (f"  ({detail})" if detail else "") + "\n")
        for w in out["warnings"]:
            stream.write(f"warning: {w}\n")
        stream.write(out["msg"] + "\n")
    if out["reboot_required"]:
        stream.write("reboot required for some settings to take effect\n")
    if out["restart_required"]:
        stream.write(f"restart {' or '.join(out['restart_required'])} to see new hugetlbfs mounts\n")
    if show_diff and (out["diff"]["before"] or out["diff"]["after"]):
        import difflib

        stream.writelines(difflib.unified_diff(out["diff"]["before"].splitlines(True),
                                               out["diff"]["after"].splitlines(True), "before", "after"))


def _short(value) -> str:
    if value is None:
        return "-"
    text = str(value)
    if "\n" in text.rstrip("\n"):
        return f"({len(text.splitlines())} lines)"
    return text.strip()
