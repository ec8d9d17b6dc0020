"""``kvmtune devices`` as text: one block per IOMMU group, each function on a line whose
address is never cut, the reason wrapped below it."""

from __future__ import annotations


from kvmtune.grammar import number


def width() -> int:
    import shutil

    return max(60, min(shutil.get_terminal_size((80, 24)).columns, 160))


def wrap(text: str, indent: str, width: int) -> list[str]:
    import textwrap

    # break_long_words=False: an address or path an operator copies is never split
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def render_devices(report: dict, no_iommu: str | None, unsure: str, out) -> None:
    """``unsure``: the note every reason ends with when the host's needs are not fully
    known; said once at the top instead of on every device."""
    cols = width()
    devices = report["devices"]
    groups = report["groups"]
    out.write(f"{len(devices)} PCI functions, {len(groups)} IOMMU groups\n")
    if no_iommu:
        out.write("\n".join(wrap(f"passthrough unavailable: {no_iommu}", "", cols)) + "\n")
    if unsure:
        out.write("\n".join(wrap(unsure.removeprefix("; ").capitalize() + "; a 'never' may be missing",
                                   "", cols)) + "\n")
    by_group: dict = {}
    for d in devices:
        by_group.setdefault(d["iommu_group"], []).append(d)
    order = sorted(by_group, key=lambda g: (g is None, number(g) or 0))
    for g in order:
        out.write("\n" + (f"group {g}" if g is not None else "no IOMMU group") + "\n")
        for d in by_group[g]:
            ids = f"{(d['vendor'] or '?').removeprefix('0x')}:{(d['device'] or '?').removeprefix('0x')}"
            p = d["passthrough"]
            out.write(f"  {d['address']}  {ids}  {d['kind']:<8} {(d['driver'] or '-'):<14} {p['verdict']}\n")
            needed = f"host needs it: {', '.join(d['host_needs'])}" if d["host_needs"] else ""
            if g is None and no_iommu:  # without any group, the one reason is said above
                reason = needed
            else:
                reason = p["reason"].replace(unsure, "") if unsure else p["reason"]
                if needed and "host needs" not in reason:
                    reason += f" ({needed})"
            if reason:
                out.write("\n".join(wrap(reason, "      ", cols)) + "\n")
