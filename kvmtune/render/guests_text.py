"""kvmtune guests for people: a row per guest (RAM, backing bar, locality, pinning), then findings."""

from __future__ import annotations

import sys

from kvmtune.checks.model import PASS, Check
from kvmtune.render.check_text import render_rows, use_colour

BAR = 10


def _backing(g: dict) -> tuple[str, float | None]:
    """Shares of the whole RAM, not of the resident part: 6 MiB on THP of 256 MiB is 2 % THP."""
    mem = g["memory"]
    huge = {int(k): v for k, v in mem["hugetlb_kb"].items() if v}
    untouched = mem.get("untouched_kb", 0)
    resident = sum(huge.values()) + mem["thp_kb"] + mem["small_kb"]
    total = max(mem["total_kb"], resident + untouched)
    if not resident:
        return "nothing resident", None
    def pct(kb: int) -> str:
        return f"{round(kb * 100 / total)}%"

    parts = [f"{pct(v)} {_size(k)}" for k, v in sorted(huge.items())]
    if mem["thp_kb"]:
        parts.append(f"{pct(mem['thp_kb'])} THP")
    if mem["small_kb"]:
        parts.append(f"{pct(mem['small_kb'])} 4K")
    if round(untouched * 100 / total):
        parts.append(f"{pct(untouched)} untouched")
    return ", ".join(parts) + f" ({mem['source'] or '?'})", (resident - mem["small_kb"]) / total


def _size(kb: int) -> str:
    return f"{kb >> 20}G" if kb >= 1 << 20 else f"{kb >> 10}M"


def _pinning(g: dict) -> str:
    if not g["vcpus"]:
        n = g["vcpu_fds"]
        return f"{n} vCPU{'s' if n != 1 else ''}, threads unnamed, none seen in KVM_RUN"
    if g["pinned_one_to_one"]:
        return "1:1 on " + ",".join(str(v["allowed"][0]) for v in g["vcpus"])
    cpus = sorted({c for v in g["vcpus"] for c in v["allowed"]})
    n = len(g["vcpus"])
    return f"{n} vCPU{'s' if n != 1 else ''} float on {_cpus(cpus)}"


def _cpus(cpus: list[int]) -> str:
    from kvmtune.probe.parse import format_cpulist

    return format_cpulist(cpus) if cpus else "-"


def rows(report: dict) -> list[list[str]]:
    out = []
    for g in report["guests"]:
        text, huge = _backing(g)
        bar = "" if huge is None else "█" * round(huge * BAR) + "░" * (BAR - round(huge * BAR))
        loc = g["numa"]["locality"]
        out.append([f"{g['name']} ({g['pid']})", g["vmm"], f"{g['memory']['total_kb'] >> 10} MiB", bar, text,
                    "-" if loc is None else f"{loc:.0%}", _pinning(g)])
    return out


COLUMNS = ("guest (pid)", "vmm", "RAM", "huge", "backing", "local", "vCPUs")


def _widths(table: list[list[str]]) -> list[int]:
    return [max(len(COLUMNS[i]), *(len(r[i]) for r in table)) for i in range(len(COLUMNS))]


def _render_terminal(head: str, table: list[list[str]], stream) -> None:
    """The table where it fits the terminal; else a block per guest. Nothing is cut or folded
    (a guest's name is what an operator types next): a cell is never narrower than its text."""
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, force_terminal=True)
    console.print(Text(head, style="bold"), soft_wrap=True)
    if not table:
        return
    widths = _widths(table)
    if sum(widths) + 2 * (len(widths) - 1) <= console.width:
        console.print(Text("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip(), style="bold"))
        for row in table:
            line = Text()
            for i, (cell, w) in enumerate(zip(row, widths)):
                line.append(("  " if i else "") + cell.ljust(w), style="green" if cell.startswith("█") else None)
            line.rstrip()
            console.print(line, soft_wrap=True)
        return
    for name, vmm, ram, bar, backing, local, vcpus in table:
        console.print(Text(name, style="bold"), soft_wrap=True)
        line = Text(f"    {vmm}, {ram}  ")
        line.append(bar, style="green")
        line.append(f" {backing}")
        console.print(line, soft_wrap=True)
        console.print(Text(f"    {local} local, {vcpus}"), soft_wrap=True)


def render_guests(report: dict, stream=None) -> None:
    stream = stream or sys.stdout
    host = report["host"]
    hidden = len(report["hidden"])  # a VMM the user may not inspect still runs a guest
    head = (f"kvmtune guests  {len(report['guests']) + hidden} running on {host['hostname'] or 'this host'}"
            + (f" ({hidden} not inspectable)" if hidden else "")
            + ("" if host["live"] else f"  (snapshot {host['root']})"))
    colour = use_colour(stream)
    table = rows(report)
    if colour:
        _render_terminal(head, table, stream)
    else:
        stream.write(head + "\n")
        if table:
            plain = [[c.replace("█", "#").replace("░", ".") for c in row] for row in table]
            widths = _widths(plain)
            for row in [list(COLUMNS), *plain]:
                stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    lines: list[tuple] = []
    if not host["processes"]:
        lines.append(("line", [("the snapshot holds no process table: no guests can be seen", None)]))
    elif not report["guests"] and not hidden:
        lines.append(("line", [("no running KVM guests (no process holds a KVM VM descriptor)", None)]))
    for hidden in report["hidden"]:
        lines.append(("line", [(f"not inspectable: {hidden['name']} (pid {hidden['pid']}): {hidden['reason']}",
                                "yellow")]))
    if report["findings"]:
        lines.append(("line", []))
        lines.append(("area", "Findings"))
        for f in report["findings"]:
            lines.append(("check", Check(f["id"], f["status"], f["title"], f["detail"], f["hint"])))
            if f["hint"] and f["status"] != PASS:
                for hint in f["hint"].split(" | "):
                    lines.append(("hint", hint))
    if lines:
        render_rows(lines, stream, colour)
