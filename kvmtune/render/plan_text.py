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
    colour = use_colour(stream)
    if colour:
        _render_terminal(rows, out, stream)
    else:
        width = max([len(r[0]) for r in rows] + [6])
        for target, before, after, status, detail in rows:
            stream.write(f"{status.upper():16} {target:{width}}  {before} -> {after}"
                         + (f"  ({detail})" if detail else "") + "\n")
        for w in out["warnings"]:
            stream.write(f"warning: {w}\n")
        stream.write(out["msg"] + "\n")
    # verify of a profile with intents: the checks that keep the host from them, with the fix
    for c in out.get("intent_checks", ()):
        if c["status"] in ("fail", "unknown"):
            stream.write(f"{c['status'].upper():16} {c['id']}  {c['detail']}\n"
                         + (f"{'':16} fix: {c['hint']}\n" if c["hint"] else ""))
    # verify: who changed a drifted target, where it can be named (kvmtune.watch.owners)
    for t in out.get("targets", ()):
        if t["owner"]:
            write_folded(stream, "OWNER", f"{t['target']}: changed by {t['owner']}")
    if out["reboot_required"]:
        stream.write("reboot required for some settings to take effect\n")
    if out["restart_required"]:
        stream.write(f"restart {' or '.join(out['restart_required'])} to see new hugetlbfs mounts\n")
    if show_diff and (out["diff"]["before"] or out["diff"]["after"]):
        import difflib

        lines = difflib.unified_diff(out["diff"]["before"].splitlines(True), out["diff"]["after"].splitlines(True),
                                     "before", "after")
        stream.writelines(map(_diff_colour, lines) if colour else lines)


STATUS_WIDTH = 15  # pending-restart
INDENT = 2 + STATUS_WIDTH + 1


def _render_terminal(rows: list[tuple], out: dict, stream) -> None:
    """A line per change: status, the target whole (never cut or folded: an operator copies it),
    then before -> after where the line has room, else on the next line; the detail below,
    folded between words only. A line longer than the terminal is left to the terminal to
    wrap (soft_wrap): copying it gives it back whole."""
    from rich.console import Console
    from rich.text import Text

    from kvmtune.render.check_text import hint_lines

    console = Console(file=stream, highlight=False, force_terminal=True)
    width = console.width
    column = min(max([len(r[0]) for r in rows] + [6]), max(width - INDENT - 24, 12))
    for target, before, after, status, detail in rows:
        values = f"{before} -> {after}"
        line = Text("  ")
        line.append(f"{status.upper():{STATUS_WIDTH}}", style=STYLES.get(status))
        if INDENT + len(target) > width:  # a target longer than its column: a line of its own
            console.print(line, soft_wrap=True)
            line = Text()
        else:
            line.append(" ")
        line.append(target, style="bold")
        if INDENT + max(len(target), column) + 2 + len(values) <= width:
            line.append(" " * (max(column - len(target), 0) + 2) + values)
            console.print(line, soft_wrap=True)
        else:
            console.print(line, soft_wrap=True)
            console.print(Text(" " * INDENT + values), soft_wrap=True)
        for text in hint_lines(detail, max(width - INDENT, 20)):
            console.print(Text(" " * INDENT + text, style="dim"), soft_wrap=True)
    for w in out["warnings"]:
        for n, text in enumerate(hint_lines("warning: " + w, max(width - 2, 20))):
            console.print(Text(("  " if n else "") + text, style="yellow"), soft_wrap=True)
    console.print(Text(out["msg"], style="bold red" if out["failed"] else "bold"), soft_wrap=True)


def write_folded(stream, head: str, text: str) -> None:
    """``head`` in the status column, ``text`` after it: on a terminal folded to its width there
    between words only (a path stays whole); piped, one line for grep."""
    from kvmtune.render.check_text import hint_lines

    if not use_colour(stream):
        stream.write(f"{head:16} {text}\n")
        return
    import shutil

    width = max(shutil.get_terminal_size((80, 24)).columns - 17, 20)
    for n, line in enumerate(hint_lines(text, width)):
        stream.write(f"{head if n == 0 else '':16} {line}\n")


# git diff's colours (color.diff: meta bold, frag cyan, old red, new green), only on a terminal.
_DIFF_COLOURS = (("---", "\x1b[1m"), ("+++", "\x1b[1m"), ("@@", "\x1b[36m"), ("-", "\x1b[31m"), ("+", "\x1b[32m"))


def _diff_colour(line: str) -> str:
    for prefix, code in _DIFF_COLOURS:
        if line.startswith(prefix):
            body = line.rstrip("\n")
            return f"{code}{body}\x1b[m" + line[len(body):]
    return line


def _short(value) -> str:
    if value is None:
        return "-"
    text = str(value)
    if "\n" in text.rstrip("\n"):
        return f"({len(text.splitlines())} lines)"
    return text.strip()
