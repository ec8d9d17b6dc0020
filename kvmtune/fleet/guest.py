"""``--guest MODEL,RAM,PAGESIZE``: one guest shape, and whether a host can take it now.

A host takes the guest when its CPU runs MODEL (as cpu-models judges it), its QEMU has
MODEL, and, on huge pages, the pool of PAGESIZE has RAM free now.
"""

from __future__ import annotations

import re

from kvmtune.errors import UsageError, quoted
from kvmtune.probe.hugepages import size_label
from kvmtune.record import record

SIZE = re.compile(r"([1-9][0-9]{0,9})([KMGT])(?:i?B)?", re.IGNORECASE)
UNITS_KB = {"K": 1, "M": 1 << 10, "G": 1 << 20, "T": 1 << 30}
PAGE_SIZES_KB = (4, 2048, 1 << 20)  # x86's: 4K, 2M, 1G
EXAMPLE = "Cascadelake-Server-v5,64G,1G"


@record
class Guest:
    model: str
    ram_kb: int
    page_kb: int

    @property
    def pages(self) -> int:
        return self.ram_kb // self.page_kb


def _size_kb(text: str, what: str) -> int:
    match = SIZE.fullmatch(text.strip())
    if not match:
        raise UsageError(f"--guest: {what}: expected a size like 64G or 512M, got {quoted(text, 40)}")
    return int(match.group(1)) * UNITS_KB[match.group(2).upper()]


def parse_guest(text: str) -> Guest:
    """MODEL,RAM,PAGESIZE (``Cascadelake-Server-v5,64G,1G``); UsageError (exit 2) otherwise."""
    from kvmtune.cpumodels import table

    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        raise UsageError(f"--guest: expected MODEL,RAM,PAGESIZE (e.g. {EXAMPLE}), got {quoted(text, 60)}")
    model = parts[0].strip()
    names = [m["name"] for m in table.models()]
    if model not in names:
        import difflib

        close = difflib.get_close_matches(model, names, 1)
        hint = f" (did you mean {close[0]}?)" if close else " (see 'kvmtune cpu-models')"
        raise UsageError(f"--guest: unknown CPU model {quoted(model, 40)}{hint}")
    ram_kb = _size_kb(parts[1], "RAM")
    page_kb = _size_kb(parts[2], "PAGESIZE")
    if page_kb not in PAGE_SIZES_KB:
        raise UsageError(f"--guest: PAGESIZE: expected 4K, 2M or 1G, got {quoted(parts[2], 20)}")
    if ram_kb % page_kb:
        raise UsageError(f"--guest: RAM {parts[1].strip()} is not a whole number of {size_label(page_kb)} pages")
    if ram_kb > 1 << 34:
        raise UsageError("--guest: RAM: at most 16T")
    return Guest(model, ram_kb, page_kb)


def pages_short(guest: Guest, hugepages_free: dict) -> str | None:
    """Why the host's huge pages cannot back the guest now, or None (4K pages need no pool)."""
    if guest.page_kb == 4:
        return None
    label = size_label(guest.page_kb)
    free = hugepages_free.get(str(guest.page_kb))
    if free is None:
        return f"no {label} huge page pool; the guest needs {guest.pages} {label} pages"
    if free < guest.pages:
        return f"{free} {label} huge pages free; the guest needs {guest.pages}"
    return None
