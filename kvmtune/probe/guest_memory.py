"""A guest's RAM as the host backs it: its mappings in /proc/PID/smaps and pages per node.

Guest RAM is whatever the VMM mapped for it: anonymous memory, a memfd, a file on a
hugetlbfs mount, or /dev/shm. Which mappings those are is not written anywhere, so they
are told by shape: writable, of one of those kinds, at least MIN_KB, the largest first
until they add up to the RAM the command line asked for (QEMU's ``-m``); ROMs and
video memory are smaller and come last.
"""

from __future__ import annotations

from kvmtune.record import record
from kvmtune.grammar import digits, hex_number

MIN_KB = 16 << 10  # below this a mapping is a ROM, a ring or a heap arena, not guest RAM
ANON_NAMES = ("", "[anon]", "/anon_hugepage", "/anon_hugepage (deleted)")


@record
class RamMapping:
    start: int
    size_kb: int
    source: str  # hugetlbfs, memfd, anonymous, shm, file
    path: str
    page_kb: int  # KernelPageSize
    rss_kb: int
    thp_kb: int  # AnonHugePages (+ shmem/file PMD mappings)
    hugetlb_kb: int  # Private_Hugetlb + Shared_Hugetlb
    nodes_kb: dict  # node -> kB, from numa_maps


def _source(path: str, hugetlbfs: tuple[str, ...]) -> str | None:
    if path in ANON_NAMES:
        return "anonymous"
    if path.startswith("/memfd:"):
        return "memfd"
    if any(path == m or path.startswith(m.rstrip("/") + "/") for m in hugetlbfs):
        return "hugetlbfs"
    if path.startswith("/dev/shm/"):
        return "shm"
    if path.startswith("[") or path.startswith("anon_inode:"):
        return None  # [heap], [stack], [vdso], a vCPU's run page...
    return "file"


def _blocks(text: str):
    """(header line, field lines) per mapping. Every block of a 3.8+ kernel ends with its
    VmFlags line: one split in C finds them all (a regex over a QEMU's 250 KB takes 3 ms)."""
    if "\nVmFlags:" in text:
        for i, part in enumerate(text.split("\nVmFlags:")):
            if i:
                part = part.partition("\n")[2]  # the rest of the previous block's VmFlags line
            head, _, body = part.partition("\n")
            yield head, body
        return
    import re

    starts = [m.start() for m in re.finditer(r"^[0-9a-f]+-[0-9a-f]+ ", text, re.M)] + [len(text)]
    for a, b in zip(starts, starts[1:]):
        head, _, body = text[a:b].partition("\n")
        yield head, body


def parse_smaps(text: str, hugetlbfs: tuple[str, ...]) -> list[RamMapping]:
    """Every writable mapping that could be guest RAM, with its page counters. A QEMU has
    hundreds of mappings: the fields of a block are parsed only when its header (its size
    is in its addresses) says it could hold guest RAM."""
    out: list[RamMapping] = []
    for head, body in _blocks(text):
        parts = head.split(None, 5)
        if len(parts) < 5 or not parts[1].startswith("rw"):
            continue
        first, _, last = parts[0].partition("-")
        try:
            start, end = hex_number(first), hex_number(last)
        except ValueError:
            continue
        size_kb = (end - start) >> 10
        path = parts[5].strip() if len(parts) > 5 else ""
        source = _source(path, hugetlbfs) if size_kb >= MIN_KB else None
        if source is None:
            continue
        f: dict[str, int] = {}
        for line in body.splitlines():
            key, sep, rest = line.partition(":")
            value = rest.split()
            if sep and value and digits(value[0]):
                f[key] = int(value[0])
        out.append(RamMapping(start, f.get("Size", size_kb), source, path, f.get("KernelPageSize", 4),
                              f.get("Rss", 0),
                              f.get("AnonHugePages", 0) + f.get("ShmemPmdMapped", 0) + f.get("FilePmdMapped", 0),
                              f.get("Private_Hugetlb", 0) + f.get("Shared_Hugetlb", 0), {}))
    return out


def apply_numa_maps(text: str, mappings: list[RamMapping]) -> list[RamMapping]:
    """The mappings with nodes_kb filled from numa_maps (``N<node>=<pages>``, kernelpagesize_kB)."""
    by_start = {m.start: m for m in mappings}
    nodes: dict[int, dict[int, int]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        try:
            start = hex_number(words[0])
        except ValueError:
            continue
        if start not in by_start:
            continue
        page_kb = 4
        counts: dict[int, int] = {}
        for word in words[1:]:
            key, _, value = word.partition("=")
            if key == "kernelpagesize_kB" and digits(value):
                page_kb = int(value)
            elif key[:1] == "N" and digits(key[1:]) and digits(value):
                counts[int(key[1:])] = int(value)
        nodes[start] = {node: pages * page_kb for node, pages in counts.items()}
    return [m._replace(nodes_kb=nodes.get(m.start, {})) for m in mappings]


def guest_ram(mappings: list[RamMapping], ram_kb: int | None) -> list[RamMapping]:
    """The mappings that hold the guest's RAM: the largest first, until they hold the RAM asked
    for (none may overshoot it by 5 %); without a known size, those of at least 128 MiB."""
    ordered = sorted(mappings, key=lambda m: -m.size_kb)
    if ram_kb is None:
        return [m for m in ordered if m.size_kb >= 128 << 10]
    chosen, total = [], 0
    for m in ordered:
        if total >= ram_kb:
            break
        if total + m.size_kb <= ram_kb * 1.05:
            chosen.append(m)
            total += m.size_kb
    return chosen


def backing(mappings: list[RamMapping]) -> dict:
    """Where the RAM sits: kB on hugetlb pages per page size, on THP, on small pages."""
    hugetlb: dict[str, int] = {}
    thp = small = 0
    for m in mappings:
        if m.hugetlb_kb or m.page_kb > 4:
            hugetlb[str(m.page_kb)] = hugetlb.get(str(m.page_kb), 0) + m.hugetlb_kb
        else:
            thp += m.thp_kb
            small += max(m.rss_kb - m.thp_kb, 0)
    sources = sorted({m.source for m in mappings})
    return {"hugetlb_kb": hugetlb, "thp_kb": thp, "small_kb": small,
            "source": sources[0] if len(sources) == 1 else ("+".join(sources) or None)}


def untouched_outside_hugetlb(mappings) -> int:
    """kB the guest has not touched outside hugetlb mappings: whether they will be on huge pages is
    not known until they are (THP is best-effort); a hugetlb mapping's pages are huge anyway."""
    return sum(max(m.size_kb - m.rss_kb, 0) for m in mappings if not (m.hugetlb_kb or m.page_kb > 4))
