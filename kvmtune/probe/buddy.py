"""Free memory by block size (/proc/buddyinfo, /proc/pagetypeinfo): how many huge pages the
kernel could hand out now, without compacting memory first.

The buddy allocator keeps free memory in blocks of 2^order pages; ``/proc/buddyinfo`` counts
them per node, zone and order. A 2 MiB page (order 9 with 4 KiB pages) is one free block of
order >= 9, so the free blocks of order o >= 9 give ``sum(n_o * 2^(o-9))`` pages, exactly,
with no compaction. A 1 GiB page (order 18) is larger than the largest buddy block (order 10,
4 MiB, on x86-64 since 6.x: ``NR_PAGE_ORDERS`` 11), so the kernel builds it from a free,
1 GiB-aligned run of them (alloc_contig_pages): the free largest blocks give an upper bound,
``n_max * 2^max // 2^18``, not a promise (buddyinfo does not say which blocks are adjacent).

HugeTLB pools take pages with GFP_HIGHUSER_MOVABLE (mm/hugetlb.c htlb_alloc_mask): zones
DMA32, Normal and Movable, never DMA (only GFP_DMA reaches it), so DMA is left out.
``/proc/pagetypeinfo`` (root only) splits the same free blocks by migrate type and counts
pageblocks by type: free blocks of type Movable, and movable pageblocks, are what compaction
could turn into more huge pages; it is read where it can be, for the "after compaction" bound.
"""

from __future__ import annotations

from kvmtune.grammar import digits
from kvmtune.record import record

HUGE_ZONES = ("DMA32", "Normal", "Movable")  # where HugeTLB pages come from


@record
class Zone:
    node: int
    zone: str
    free: tuple  # free blocks per order, 0 upwards


@record
class Fragmentation:
    zones: tuple  # Zone, from buddyinfo
    page_size: int  # bytes
    movable_blocks: dict = {}  # (node, zone) -> pageblocks of type Movable (pagetypeinfo), {} if unread
    pageblock_order: int | None = None
    problems: tuple = ()

    def pages_now(self, size_kb: int, node: int | None = None) -> tuple[int, bool]:
        """(huge pages of ``size_kb`` the free lists give now, exact?) on ``node`` or all nodes."""
        order = (size_kb * 1024 // self.page_size).bit_length() - 1
        total, exact = 0, True
        for z in self.zones:
            if z.zone not in HUGE_ZONES or (node is not None and z.node != node) or not z.free:
                continue
            top = len(z.free) - 1
            if order <= top:
                total += sum(n << (o - order) for o, n in enumerate(z.free) if o >= order)
            else:  # larger than any buddy block: at most what the largest free blocks add up to
                total += (z.free[top] << top) >> order
                exact = False
        return total, exact

    def pages_compacted(self, size_kb: int, node: int | None = None) -> int | None:
        """At most this many after compaction (no reclaim): no more than the free memory, nor
        than the pageblocks of type Movable hold (compaction migrates only movable pages);
        None where pagetypeinfo was not read."""
        if not self.movable_blocks or self.pageblock_order is None:
            return None
        pages = size_kb * 1024 // self.page_size
        blocks = sum(n for (nd, zone), n in self.movable_blocks.items()
                     if zone in HUGE_ZONES and (node is None or nd == node))
        free = sum(n << o for z in self.zones if z.zone in HUGE_ZONES and (node is None or z.node == node)
                   for o, n in enumerate(z.free))
        return max(min((blocks << self.pageblock_order) // pages, free // pages), self.pages_now(size_kb, node)[0])

    @property
    def nodes(self) -> tuple:
        return tuple(sorted({z.node for z in self.zones}))


def parse_buddyinfo(text: str) -> tuple:
    """``Node 0, zone   Normal   8508  12718 ...`` -> Zone per line; ValueError if it is not that."""
    zones = []
    for line in text.splitlines():
        if not line.strip():
            continue
        words = line.replace(",", " ").split()
        if len(words) < 5 or words[0] != "Node" or words[2] != "zone" or not digits(words[1]) \
                or not all(digits(w) and len(w) < 20 for w in words[4:]) or len(words) > 4 + 64:
            raise ValueError(f"/proc/buddyinfo: unexpected line {line[:60]!r}")
        zones.append(Zone(int(words[1]), words[3], tuple(int(w) for w in words[4:])))
    return tuple(zones)


def parse_pagetypeinfo(text: str) -> tuple[int | None, dict]:
    """(pageblock order, {(node, zone): Movable pageblocks}) from the "Number of blocks type"
    table; ({} if the table is not there)."""
    order, movable, columns = None, {}, None
    for line in text.splitlines():
        words = line.replace(",", " ").split()
        if line.startswith("Page block order:") and words and digits(words[-1]):
            order = int(words[-1])
        elif line.startswith("Number of blocks type"):
            columns = words[4:]
        elif columns and len(words) == 4 + len(columns) and words[0] == "Node" and words[2] == "zone" \
                and digits(words[1]) and "Movable" in columns and all(digits(w) for w in words[4:]):
            movable[(int(words[1]), words[3])] = int(words[4 + columns.index("Movable")])
    return order, movable


def read_fragmentation(host, types: bool = True) -> Fragmentation | None:
    """None where the kernel (or the snapshot) has no /proc/buddyinfo. ``types``: read
    /proc/pagetypeinfo too, for the bound after compaction; the kernel walks every pageblock
    to count them (90 ms on a 24 GiB host, buddyinfo takes 20 us), so plain check does not."""
    from kvmtune.errors import HostError

    text = host.read_optional("proc/buddyinfo")
    if text is None:
        return None
    zones = parse_buddyinfo(text)
    problems, order, movable, text = [], None, {}, None
    try:
        text = host.read_optional("proc/pagetypeinfo") if types else None  # 0400: root only
    except HostError as exc:
        problems = [f"/proc/pagetypeinfo: {exc.reason}"]
    if text is not None:
        order, movable = parse_pagetypeinfo(text)
    return Fragmentation(zones, host.page_size, movable, order, tuple(problems))
