"""cpu-models and cpu-baseline for people."""

from __future__ import annotations

import sys

from kvmtune.errors import printable
from kvmtune.render.check_text import use_colour

STYLES = {"usable": "green", "not-usable": "red", "undecided": "yellow"}


def render_models(out: dict, stream=None) -> None:
    stream = stream or sys.stdout
    if out.get("applicable") is False:
        import shutil
        import textwrap

        width = max(60, min(shutil.get_terminal_size((80, 24)).columns, 100))
        for text in (f"{out['reason']}.", f"Use instead: {out['instead']}.", f"Migration: {out['migration']}."):
            stream.write(textwrap.fill(text, width, subsequent_indent="  ") + "\n")
        return
    if out.get("kvm_unavailable"):
        # First, not last: every verdict below rests on it.
        stream.write(f"verdicts from /proc/cpuinfo: KVM could not be asked ({out['kvm_unavailable']}); "
                     "KVM may offer guests fewer features than cpuinfo shows\n\n")
    qemu = out.get("qemu") or {}
    known = qemu.get("models_known")
    # The QEMU column: whether this host's QEMU has the model, or, where that is not known,
    # which source names it (a model only libvirt's map has starts in no QEMU).
    stream.write(f"QEMU: {qemu.get('models_from') or 'not known'}\n\n")
    rows = []
    for m in out["models"]:
        why = ", ".join(m["missing"][:6]) + (" ..." if len(m["missing"]) > 6 else "") if m["missing"] else \
            ("cannot decide: " + ", ".join(m["undecided"][:6]) if m["undecided"] else "")
        rows.append((m["status"], m["name"], _qemu_cell(m, known), m["vendor"] or "generic", why))
    head = ("status", "model", "QEMU" if known else "named by", "vendor", "missing")
    if use_colour(stream):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(show_edge=False, header_style="bold")
        for col in head:
            # A model name is copied whole; the QEMU cell is short enough to keep on one line.
            table.add_column(col, no_wrap=col == "model", min_width=12 if col == head[2] else None)
        for status, name, has, vendor, why in rows:
            table.add_row(Text(status, style=STYLES[status]), Text(name), Text(has), Text(vendor), Text(why))
        Console(file=stream, highlight=False).print(table)
    else:
        for status, name, has, vendor, why in rows:
            stream.write(f"{status:11} {name:28} {has:13} {vendor:22} {why}\n")
    w = stream.write
    w(f"\ndecided by: {'what KVM offers guests (KVM_GET_SUPPORTED_CPUID, feature MSRs)' if out['source'] == 'kvm' else '/proc/cpuinfo flags (KVM not asked)'}\n")
    word = " (by cpuinfo's word only)" if out["source"] == "cpuinfo" else ""
    w(f"best per vendor{word}: " + ", ".join(f"{k}: {v}" for k, v in out["best"].items()) + "\n")
    rec = out["recommended"]
    if rec:
        w(f"\nrecommended: {rec['model']}\n  QEMU:    {rec['qemu']}\n  libvirt: "
          + rec["libvirt"].replace("\n", "\n           ") + "\n")
        if rec.get("in_qemu") is None:
            w(f"  QEMU has it since: {_releases(rec.get('qemu_releases') or [])} (this host's QEMU not known)\n")
    elif out["models"]:
        w("\nno model this host can run is one its QEMU has\n")
    if out["next"]:
        nxt = out["next"]
        w(f"\nfor {nxt['model']} this host lacks: {', '.join(nxt['missing']) or 'nothing decidable'}"
          + (f" (cannot decide: {', '.join(nxt['undecided'])})" if nxt["undecided"] else "")
          + ("; and this host's QEMU does not have it" if nxt.get("in_qemu") is False else "") + "\n")


def _releases(names: list[str]) -> str:
    """``QEMU 6.2+`` (every tabulated release from 6.2 on), ``QEMU 6.2-6.2``, ``libvirt only``."""
    if not names:
        return "libvirt only"
    from kvmtune.cpumodels.qemu import releases

    first, last = (n.rsplit(".", 1)[0] for n in (names[0], names[-1]))
    return f"QEMU {first}+" if names[-1] == releases()[-1]["release"] else f"QEMU {first}-{last}"


def _qemu_cell(model: dict, known) -> str:
    if known:
        return {True: "yes", False: "no"}.get(model.get("in_qemu"), "not known")
    return _releases(model.get("qemu_releases") or [])


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
        for source in out.get("qemu_models_from") or []:
            w(f"  checked against: {source}\n")
    held = out.get("held_back")
    if held:
        w(f"\nheld back from {held['model']} by:\n")
        held_back_lines(held["hosts"], w, "  ")
    for bad in out.get("invalid", []):
        w(f"unreadable: {bad['path']}: {bad['error']}\n")


def held_back_lines(hosts: list[dict], w, indent: str) -> None:
    """Each host that cannot run the next newer model, by name, with what it lacks."""
    for h in hosts:
        w(f"{indent}{h['name']}: lacks {', '.join(h['missing']) or '-'}"
          + (f"; cannot decide {', '.join(h['undecided'])}" if h["undecided"] else "") + "\n")
