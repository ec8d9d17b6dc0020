"""``kvmtune migration`` for people: the domains, who is out and why, one-way moves, warnings."""

from __future__ import annotations

import sys

from kvmtune.errors import printable
from kvmtune.probe.hugepages import size_label
from kvmtune.render.report_text import plural


def _names(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def render_migration(out: dict, guest=None, stream=None, limit: int = 8) -> None:
    stream = stream or sys.stdout

    def w(text: str) -> None:  # host names and reasons come from the result files
        stream.write(printable(text))

    if guest is not None:
        w(f"Where a {guest.model} guest of {size_label(guest.ram_kb)} on {size_label(guest.page_kb)} pages "
          "can go now:\n")
    hosts = sum(len(d["hosts"]) for d in out["domains"])
    w(f"{plural(len(out['domains']), 'migration domain')} ({plural(hosts, 'host')}), "
      f"{len(out['excluded'])} outside, {plural(len(out['one_way']), 'one-way move')}\n")
    for k, d in enumerate(out["domains"], 1):
        cpu = d["cpu_model"] or "no named model all run"
        if d["features"]:
            cpu += " +" + ",+".join(d["features"])
        if d["tsc_khz"] is None:
            tsc = "any TSC frequency (every member scales)"
        else:
            tsc = f"TSC {d['tsc_khz'] / 1000:.3f} MHz " + ("(every member scales)" if d["tsc_scaling"]
                                                         else "(within 250 ppm, or scaling)")
        qemu = d["qemu"]["min"] if d["qemu"]["min"] == d["qemu"]["max"] else f"{d['qemu']['min']} to {d['qemu']['max']}"
        w(f"\ndomain {k}: {plural(len(d['hosts']), 'host')}: {_names(d['hosts'], limit)}\n")
        w(f"  CPU   {cpu}\n  clock {tsc}\n  QEMU  {qemu}\n")
        for size, free in d["hugepages_free"].items():
            if any(free.values()):
                low = min(free, key=lambda n: (free[n], n))
                w(f"  huge pages {size_label(int(size))}: {sum(free.values())} free, fewest on {low} ({free[low]})\n")
    if out["excluded"]:
        w("\nOutside every domain:\n")
        for x in out["excluded"]:
            if len(x["reasons"]) == 1:
                w(f"  {x['host']}: {x['reasons'][0]}\n")
            else:
                w(f"  {x['host']}:\n" + "".join(f"    {r}\n" for r in x["reasons"]))
    if out["one_way"]:
        w("\nOne way only:\n")
        for m in out["one_way"]:
            w(f"  {m['from']} -> {m['to']}: {m['reason']}\n")
    if out["warnings"]:
        w("\nWarnings:\n")
        for warning in out["warnings"]:
            w(f"  {warning}\n")
