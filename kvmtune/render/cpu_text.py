"""cpu-models and cpu-baseline for people."""

from __future__ import annotations

import sys

from kvmtune.errors import printable
from kvmtune.render.check_text import use_colour

STYLES = {"usable": "green", "not-usable": "red", "undecided": "yellow"}


def render_models(out: dict, stream=None) -> None:
    stream = stream or sys.stdout
    if out.get("kvm_unavailable"):
        # First, not last: every verdict below rests on it.
        stream.write(f"verdicts from /proc/cpuinfo: KVM could not be asked ({out['kvm_unavailable']}); "
                     "KVM may offer guests fewer features than cpuinfo shows\n\n")
    rows = []
    for m in out["models"]:
        why = ", ".join(m["missing"][:6]) + (" ..." if len(m["missing"]) > 6 else "") if m["missing"] else \
            ("cannot decide: " + ", ".join(m["undecided"][:6]) if m["undecided"] else "")
        rows.append((m["status"], m["name"], m["vendor"] or "generic", why))
    if use_colour(stream):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, header_style="bold")
        for col in ("status", "model", "vendor", "missing"):
            table.add_column(col)
        for status, name, vendor, why in rows:
            table.add_row(Text(status, style=STYLES[status]), Text(name), Text(vendor), Text(why))
        Console(file=stream, highlight=False).print(table)
    else:
        for status, name, vendor, why in rows:
            stream.write(f"{status:11} {name:28} {vendor:22} {why}\n")
    w = stream.write
    w(f"\ndecided by: {'what KVM offers guests (KVM_GET_SUPPORTED_CPUID, feature MSRs)' if out['source'] == 'kvm' else '/proc/cpuinfo flags (KVM not asked)'}\n")
    word = " (by cpuinfo's word only)" if out["source"] == "cpuinfo" else ""
    w(f"best per vendor{word}: " + ", ".join(f"{k}: {v}" for k, v in out["best"].items()) + "\n")
    rec = out["recommended"]
    if rec:
        w(f"\nrecommended: {rec['model']}\n  QEMU:    {rec['qemu']}\n  libvirt: "
          + rec["libvirt"].replace("\n", "\n           ") + "\n")
    if out["next"]:
        nxt = out["next"]
        w(f"\nfor {nxt['model']} this host lacks: {', '.join(nxt['missing']) or 'nothing decidable'}"
          + (f" (cannot decide: {', '.join(nxt['undecided'])})" if nxt["undecided"] else "") + "\n")


def render_baseline(out: dict, stream=None) -> None:
    stream = stream or sys.stdout

    def w(text: str) -> None:  # names, paths and flags come from the result files: never raw to a terminal
        stream.write(printable(text))

    for warning in out["warnings"]:
        w(f"warning: {warning}\n")
    w(f"{out['hosts']} hosts ({out.get('sources', {}).get('kvm', 0)} judged by KVM, "
      f"{out.get('sources', {}).get('cpuinfo', 0)} by cpuinfo)\n")
    if out["baseline"]:
        w(f"baseline: {out['baseline']}" + (f" + {', '.join(out['extras'])}" if out["extras"] else "") + "\n")
        w(f"  QEMU:    {out['qemu']}\n  libvirt: " + out["libvirt"].replace("\n", "\n           ") + "\n")
    held = out.get("held_back")
    if held:
        w(f"\nheld back from {held['model']} by:\n")
        for h in held["hosts"]:
            w(f"  {h['name']}: lacks {', '.join(h['missing']) or '-'}"
              + (f"; cannot decide {', '.join(h['undecided'])}" if h["undecided"] else "") + "\n")
    for bad in out.get("invalid", []):
        w(f"unreadable: {bad['path']}: {bad['error']}\n")
