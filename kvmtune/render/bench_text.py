"""bench results for people: a table per section, the ratio to 4K drawn as a bar, one conclusion.

rich on a terminal; plain aligned text (ASCII bars) when piped. Host strings go to
rich as Text only, never markup.
"""

from __future__ import annotations

import sys

from kvmtune.bench.judge import conclusion
from kvmtune.render.check_text import use_colour

SCALE = 30  # cells for a ratio of 1.5 (so 20 for 1.0); a terminal gets what its width allows
SCALE_MIN = 6


def _bar(ratio: float | None, ascii_only: bool, width: int = SCALE) -> str:
    if ratio is None:
        return ""
    cells = max(1, round(min(ratio, 1.5) * width / 1.5))
    return ("#" if ascii_only else "█") * cells


def _ns(row: dict) -> str:
    # the median alone: the spread of the times is in the warnings, the ratio's in its interval
    return f"{row['ns_per_access']['median']:.0f}"


def _ratio(row: dict) -> str:
    """The ratio with its 95 % interval; an older result without one shows the ratio alone."""
    ci = row.get("ratio_vs_4k_ci")
    return f"{row['ratio_vs_4k']:.2f} ({ci[0]:.2f}-{ci[1]:.2f})" if ci else f"{row['ratio_vs_4k']:.2f}"


def _verdict(row: dict) -> str:
    return (row.get("verdict") or "").replace("-", " ")


def header(result: dict) -> str:
    h, s = result["host"], result["settings"]
    pools = ", ".join(f"{k} {v['total']}/{v['free']} free" for k, v in h["pools"].items()) or "none"
    rounds = result.get("rounds_run") or s["rounds"]
    budget = f" (at least {s['rounds']}, within {s['budget_s']:g} s)" if "budget_s" in s else ""
    first = (f"kvmtune bench  {h['cpu_model'] or 'unknown CPU'}, {h['cpus']} CPUs, kernel {h['kernel']}, "
             f"KVM {h['kvm_flavour']}")
    if not {"memory", "native"} & set(s.get("sections", ["memory"])):
        return first  # the walks' settings mean nothing to the other sections
    return (f"{first}\n"
            f"THP {h['thp'].get('enabled')}, huge page pools {pools}; working set {s['size'] >> 20} MiB, "
            f"{rounds} round{'s' if rounds != 1 else ''}{budget} x {s['accesses']:,} accesses")


def interference_line(result: dict) -> str | None:
    seen = result.get("interference")
    if not seen:
        return None
    parts = []
    if seen["steal_pct"] is not None:
        parts.append(f"steal {seen['steal_pct']:g} %")
    if seen["others_busy_pct"] is not None:
        parts.append(f"other tasks {seen['others_busy_pct']:g} % busy")
    if seen["load_1m"] is not None:
        parts.append(f"load {seen['load_1m']:g}")
    return (f"During the run: {', '.join(parts) or 'no counters'}: "
            + ("disturbed" if seen["disturbed"] else "quiet"))


def memory_rows(result: dict, ascii_only: bool, bar: int = SCALE) -> list[list[str]]:
    rows = []
    for r in result["memory"]:
        if r["skipped"]:
            rows.append([r["backing"], r["guest_page"], "skipped", "", "", "", ""])
            continue
        touch = f"{r['first_touch_ms']:.0f} ms" if r["first_touch_ms"] is not None else ""
        rows.append([r["backing"], r["guest_page"], _ns(r), _ratio(r), _bar(r["ratio_vs_4k"], ascii_only, bar),
                     _verdict(r), touch])
    return rows


def native_rows(result: dict, ascii_only: bool, bar: int = SCALE) -> list[list[str]]:
    rows = []
    for r in result["native"]:
        if r["skipped"]:
            rows.append([r["backing"], "skipped", "", "", "", ""])
            continue
        overhead = f"{r['guest_vs_native']:.2f}" if r.get("guest_vs_native") is not None else ""
        rows.append([r["backing"], _ns(r), _ratio(r), _bar(r["ratio_vs_4k"], ascii_only, bar), _verdict(r),
                     overhead])
    return rows


def exit_line(exits: dict) -> str:
    def us(key: str) -> str:
        return f"{exits[key]:.1f} us" if exits.get(key) is not None else "not measured"

    cycles = exits.get("cycles") or {}

    def both(kind: str) -> str:
        text = us(f"{kind}_us")
        return text + (f" ({cycles[kind]:,} cycles)" if cycles.get(kind) is not None else "")

    line = (f"in the kernel (port I/O to the in-kernel PIC) {both('kernel_pio')}, cpuid {both('cpuid')}, "
            f"to user space and back: port I/O {both('user_pio')}")
    if "mmio_us" in exits:
        line += f", MMIO {both('mmio')}"
    return line


def start_line(exits: dict) -> str | None:
    """What a fresh VM's start costs, and how the cycles were counted."""
    if exits.get("vm_create_ms") is None:
        return None
    line = (f"KVM_CREATE_VM {exits['vm_create_ms']:.2f} ms, first vCPU {exits['vcpu_create_ms']:.2f} ms, "
            f"first KVM_RUN {exits['first_run_ms']:.2f} ms")
    if exits.get("tsc_mhz"):
        line += f"; cycles at a TSC of {exits['tsc_mhz']:.1f} MHz ({exits['tsc_calibration']})"
    return line


def ksm_line(ksm: dict) -> str:
    s = ksm["settings"]
    at = f"pages_to_scan={s['pages_to_scan']}, sleep_millisecs={s['sleep_millisecs']}"
    cpu = f"; ksmd used {ksm['ksmd_cpu_s']:.2f} s of CPU" if ksm["ksmd_cpu_s"] is not None else ""
    if not ksm["merged"]:
        return (f"not merged within {ksm['timeout_s']:g} s at {at} ({ksm['pages_saved']} of {ksm['pages']} "
                f"pages){cpu}")
    return (f"merged {ksm['pages_saved']} of {ksm['pages']} duplicate pages "
            f"({ksm['saved_bytes'] >> 20} MiB saved) in {ksm['merge_s']:.1f} s at {at}{cpu}")


MEMORY_COLUMNS = ("backing", "guest", "ns", "vs 4K (95 %)", "", "verdict", "touch")
NATIVE_COLUMNS = ("backing", "ns", "vs 4K (95 %)", "", "verdict", "guest/native")
KEEP = ("vs 4K (95 %)",)  # a ratio and its interval read as one: never split over two lines


def render_bench(result: dict, stream=None) -> None:
    stream = stream or sys.stdout
    colour = use_colour(stream)
    out = _Sink(stream, colour)
    out.line(header(result), "bold")
    if result["memory"]:
        out.line("")
        out.line("Memory: a random walk in the guest with 2M or 4K guest pages, ns per access (median of "
                 "rounds); vs 4K = time over the 4K-backed walk of the same round, with its 95 % interval; "
                 "touch = the guest's first write sweep", "bold")
        out.table(MEMORY_COLUMNS, memory_rows(result, not colour, out.bar_width(74)))
        _skip_reasons(out, result["memory"])
    if result["native"]:
        out.line("")
        out.line("Native: the same walk by this process on the host", "bold")
        out.table(NATIVE_COLUMNS, native_rows(result, not colour, out.bar_width(73)))
        if not result["memory"]:
            _skip_reasons(out, result["native"])
    if result["exits"]:
        out.line("")
        out.line("VM exits, per exit (median): " + exit_line(result["exits"]))
        start = start_line(result["exits"])
        if start:
            out.line("A fresh VM (median of 20): " + start)
    if result["ksm"]:
        out.line("")
        out.line("KSM: " + ksm_line(result["ksm"]))
    if result.get("noise"):
        _noise(out, result["noise"], colour)
    for section, reason in result["skipped"].items():
        out.line(f"{section}: skipped: {reason}", "dim")
    seen = interference_line(result)
    if seen:
        out.line("")
        out.line(seen, "yellow" if result.get("disturbed") else "dim")
    said = conclusion(result)
    if not result.get("noise") or said != result["noise"]["conclusion"]:  # a noise-only run said it above
        out.line("")
        out.line(said, "bold green" if not result.get("emulated") else "bold red")
    for text in result["changes"]:
        out.line(f"note: {text}", "dim")
    for text in result["warnings"]:
        out.line(f"warning: {text}", "yellow")
    out.flush()


def _noise(out, noise: dict, colour: bool) -> None:
    from kvmtune.render import noise_text

    out.line("")
    title, legend = noise_text.heading(noise).split("\n")
    out.line(title, "bold")
    out.line(legend, "dim")
    out.table(noise_text.COLUMNS, noise_text.rows(noise, out.bar_width(66), not colour))
    for text in noise_text.osnoise_lines(noise) + [noise_text.calibration_line(noise)]:
        out.line(text, "dim")
    for text in noise["findings"]:
        out.line(f"  {text}")
    out.line(noise["conclusion"], "bold green")


def _skip_reasons(out, rows: list[dict]) -> None:
    """Why a backing was skipped, once per backing, under its table (too long for a cell)."""
    reasons = {r["backing"]: r["skipped"] for r in rows if r["skipped"]}
    for backing, reason in reasons.items():
        if reason != "not asked for":
            out.line(f"  {backing} skipped: {reason}", "dim")


def render_compare(comparison: dict, stream=None) -> None:
    stream = stream or sys.stdout
    out = _Sink(stream, use_colour(stream))
    rows = []
    for f in comparison["figures"]:
        def fmt(v):
            return "-" if v is None else f"{v:g}"
        change = "" if f["change"] is None else f"{f['change']:+.1%}"
        rows.append([f["figure"], fmt(f["before"]), fmt(f["after"]), change])
    out.table(("figure", "before", "after", "change"), rows)
    for key, both in comparison["settings_differ"].items():
        out.line(f"warning: {key} differs ({both['before']} before, {both['after']} after): figures are not "
                 "like for like", "yellow")
    for key, both in comparison["host_changes"].items():
        out.line(f"host {key}: {both['before']} -> {both['after']}", "dim")
    out.line("")
    out.line(f"before: {comparison['conclusion_before']}")
    out.line(f"after:  {comparison['conclusion_after']}", "bold")
    if comparison.get("noise_after") and comparison["noise_after"] != comparison["conclusion_after"]:
        out.line(f"noise before: {comparison.get('noise_before') or 'not measured'}")
        out.line(f"noise after:  {comparison['noise_after']}", "bold")
    out.flush()


class _Sink:
    """Lines and tables to rich (terminal) or plain text (pipe)."""

    def __init__(self, stream, colour: bool):
        self.stream, self.colour = stream, colour
        self.console = None
        if colour:
            from rich.console import Console

            self.console = Console(file=stream, highlight=False)

    def bar_width(self, other_columns: int) -> int:
        """Cells for a ratio of 1.5 beside columns needing ``other_columns`` (at most SCALE)."""
        if self.console is None:
            return SCALE
        return max(SCALE_MIN, min(SCALE, self.console.width - other_columns))

    def line(self, text: str, style: str | None = None) -> None:
        if self.console is not None:
            from rich.text import Text

            self.console.print(Text(text, style=style or ""))
        else:
            self.stream.write(text + "\n")

    def table(self, columns: tuple[str, ...], rows: list[list[str]]) -> None:
        if self.console is not None:
            from rich.table import Table
            from rich.text import Text

            table = Table(show_edge=False, header_style="bold")
            for name in columns:
                # bars are cut, never wrapped onto a second line
                table.add_column(name, overflow="crop" if not name else "fold", no_wrap=not name or name in KEEP)
            for row in rows:
                table.add_row(*(Text(cell, style="cyan" if cell.startswith("█") else "") for cell in row))
            self.console.print(table)
            return
        widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
        for row in [list(columns), *rows]:
            self.stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()
