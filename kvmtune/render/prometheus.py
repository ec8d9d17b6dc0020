"""check as node_exporter textfile-collector metrics.

Write it with ``--output /var/lib/node_exporter/textfile/kvmtune.prom``: the file
is replaced atomically, so the collector never reads half of it.
"""

from __future__ import annotations

from kvmtune.checks import Report
from kvmtune.checks.model import STATUSES
from kvmtune.render.metrics import Metrics


def render_prometheus(report: Report) -> str:
    facts = report.facts
    metrics = Metrics()
    family = metrics.family

    family("kvmtune_ready", "1 if kvmtune check found the host ready to run KVM guests.",
           [({}, 1 if report.ready else 0)])
    family("kvmtune_check_status", "1 for the status each kvmtune check has now, 0 for the others.",
           [({"check": c.id, "status": s}, 1 if c.status == s else 0) for c in report.checks for s in STATUSES])
    family("kvmtune_checks", "Number of checks per status.",
           [({"status": s}, n) for s, n in report.summary.items()])
    hugepages = facts.known("hugepages")
    pools, nodes = [], []
    for p in hugepages.pools if hugepages is not None else ():
        pools.append((p, {"size_kb": p.size_kb}))
        for node_id, counts in sorted(p.nodes.items()):
            nodes.append((counts, {"size_kb": p.size_kb, "node": node_id}))
    if hugepages is not None:
        family("kvmtune_hugepages_total", "Persistent huge pages in the pool, per size (and per node).",
               [(labels, p.total or 0) for p, labels in pools] +
               [(labels, c.get("total") or 0) for c, labels in nodes])
        family("kvmtune_hugepages_free", "Free huge pages in the pool, per size (and per node).",
               [(labels, p.free or 0) for p, labels in pools] +
               [(labels, c.get("free") or 0) for c, labels in nodes])
    ksm = facts.known("ksm")
    if ksm is not None and ksm.available:
        family("kvmtune_ksm_run", "KSM run state: 0 stopped, 1 running, 2 unmerging.", [({}, ksm.get("run") or 0)])
        family("kvmtune_ksm_pages", "KSM page counters.",
               [({"kind": k}, ksm.get(f"pages_{k}") or 0) for k in ("shared", "sharing", "unshared", "volatile")])
        family("kvmtune_ksm_saved_bytes", "Memory KSM saves now: (pages_sharing + ksm_zero_pages) x page size.",
               [({}, ksm.saved_bytes)])
    return metrics.text()
