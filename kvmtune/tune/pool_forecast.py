"""Warn before growing a HugeTLB pool that free memory cannot fill now (probe.buddy's forecast).

The kernel grants pool growth best-effort and compacts first (openshift-kni/performance-addon-
operators #279, spdk #702: pools that came up short at run time). Pools grow larger sizes
first, so each size's growth is forecast against what the larger ones left; a shortfall is a
warning with the way out, not a refusal: compaction may still find the pages.
"""

from __future__ import annotations

from kvmtune.probe import parse
from kvmtune.probe.hugepages import size_label
from kvmtune.tune.change import PENDING


def shortfall_warnings(changes, frag) -> list[str]:
    """One warning per pool whose growth the free lists cannot give now."""
    out = []
    taken: dict = {}  # node (None: any) -> kB of free blocks the larger pools planned before take
    for c in changes:  # plan_pools' order: larger sizes first, per node before totals
        grow = (parse.int_or_none(c.after) or 0) - (parse.int_or_none(c.before) or 0)
        if grow <= 0 or c.status != PENDING:
            continue
        now, exact = frag.pages_now(c.size_kb, c.node)
        used = taken.get(c.node, 0) + (taken.get(None, 0) if c.node is not None else
                                       sum(v for k, v in taken.items() if k is not None))
        now = max(now - used // c.size_kb, 0)
        taken[c.node] = taken.get(c.node, 0) + min(grow, now) * c.size_kb  # what it takes from free blocks
        if now >= grow:
            continue
        label, where = size_label(c.size_kb), f" on node {c.node}" if c.node is not None else ""
        after = frag.pages_compacted(c.size_kb, c.node)
        text = (f"{c.target}: growing by {grow} pages, but free memory{where} holds "
                f"{'at most ' if not exact else ''}{now} free {label} blocks now (/proc/buddyinfo)")
        if after is not None and after - used // c.size_kb < grow:
            text += f", and at most {max(after - used // c.size_kb, 0)} even after compaction: the pool will fall short"
        else:
            text += ": the kernel must compact memory first and may still fall short"
        out.append(text + "; reserve it at boot (boot: true), or let apply compact and retry (hugepages.compact: true)")
    return out
