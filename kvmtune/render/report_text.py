"""The fleet report for people."""

from __future__ import annotations

import sys

from kvmtune.errors import printable
from kvmtune.probe.hugepages import size_label
from kvmtune.report import LOW_LOCALITY


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def render_report(summary: dict, stream=None, limit: int = 10) -> None:
    stream = stream or sys.stdout

    def w(text: str) -> None:  # names and details come from the result files: never raw to a terminal
        stream.write(printable(text))

    c = summary["counts"]
    w(f"{plural(c['hosts'], 'host')}: {c['ready']} ready, {c['not_ready']} not ready"
      + (" (strict: warnings and unknowns count)" if summary.get("strict") else "")
      + (f", {plural(c['invalid'], 'unreadable result')}" if c["invalid"] else "") + "\n")
    for d in summary.get("duplicates", ()):
        w(f"  {d['host']}: {plural(len(d['left_out']) + 1, d['kind'] + ' result')}; the newest counts "
          f"({d['kept']}), left out: {', '.join(d['left_out'])}\n")
    intents = summary.get("intents") or {}
    if set(intents) - {"general"}:  # some results were judged for a workload: say who is ready for what
        w("Ready for: " + ", ".join(f"{name} {n['ready']} of {n['judged']}" for name, n in intents.items()) + "\n")
    not_ready = [h for h in summary["hosts"] if not h["ready"]]
    if not_ready:
        w("\nNot ready:\n")
        for h in not_ready[:limit * 5]:
            why = "; ".join(f"{r['check']} {r['status']}: {r['detail']}" for r in h["reasons"])
            only = (f" (ready for {', '.join(h['ready_for'])} only)"
                    if h["ready_for"] and h["ready_for"] != h["intents"] else "")
            w(f"  {h['name']}{only}: {why}\n")
    if summary.get("reasons"):
        w("\nWhy, across the fleet:\n")
        for r in summary["reasons"][:limit]:
            w(f"  {plural(len(r['hosts']), 'host'):>9}: {r['check']} {r['status']} ({r['detail']})\n")
    for key, title in (("top_failing", "Most common failures"), ("top_warnings", "Most common warnings")):
        if summary[key]:
            w(f"\n{title}:\n")
            for row in summary[key][:limit]:
                w(f"  {row['hosts']:6} {row['check']}\n")
    w("\nNUMA shapes:\n")
    for row in summary["numa_shapes"][:limit]:
        names = ", ".join(row["hosts"][:5]) + (" ..." if len(row["hosts"]) > 5 else "")
        w(f"  {len(row['hosts']):6} {row['shape']}  ({names})\n")
    if summary["hugepages"]:
        w("\nHuge pages, whole fleet:\n")
        for size, pool in summary["hugepages"].items():
            w(f"  {size_label(int(size)):>5}: {pool['total']} pages, {pool['free']} free, on {pool['hosts']} hosts\n")
    w(f"\nKSM saves {summary['ksm_saved_bytes'] / (1 << 30):.2f} GiB across the fleet\n")
    cpu = summary.get("cpu_baseline")
    if cpu:
        w(f"\nGuest CPU every host can run: {cpu['qemu'] if cpu['baseline'] else 'none'}\n")
        for source in cpu.get("qemu_models_from") or []:  # which QEMU releases it was held to
            w(f"  checked against: {source}\n")
        for warning in cpu["warnings"]:
            w(f"  warning: {warning}\n")
        if cpu["held_back"]:
            hb = cpu["held_back"]
            w(f"  {plural(len(hb['hosts']), 'host')} {'holds' if len(hb['hosts']) == 1 else 'hold'} it back "
              f"from {hb['model']}:\n")
            from kvmtune.render.cpu_text import held_back_lines

            held_back_lines(hb["hosts"][:limit * 5], w, "    ")
            if len(hb["hosts"]) > limit * 5:
                w(f"    ... and {len(hb['hosts']) - limit * 5} more (--json lists them all)\n")
    guests = summary.get("guests")
    if guests:
        w(f"\nGuests: {plural(guests['guests'], 'guest')} on {plural(guests['hosts'], 'host')}: "
          f"{len(guests['off_hugepages'])} off huge pages, {len(guests['low_locality'])} below "
          f"{LOW_LOCALITY:.0%} NUMA locality\n")
        for g in guests["off_hugepages"][:limit]:
            w(f"  {g['host']}: {g['guest']} (pid {g['pid']}) {g['small_kb'] >> 10} MiB ({g['share']:.0%}) on 4K pages\n")
        for g in guests["low_locality"][:limit]:
            w(f"  {g['host']}: {g['guest']} (pid {g['pid']}) {g['locality']:.0%} local\n")
    for bad in summary["invalid"]:
        w(f"unreadable: {bad['path']}: {bad['error']}\n")
