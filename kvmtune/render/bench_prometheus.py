"""bench results as node_exporter textfile metrics (seconds and ratios, as Prometheus prefers)."""

from __future__ import annotations

from kvmtune.render.metrics import Metrics


def render_bench_prometheus(result: dict) -> str:
    m = Metrics()
    rows = [r for r in result["memory"] if r["ns_per_access"]]
    m.family("kvmtune_bench_access_seconds", "Median time of one random memory access in the guest.",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["ns_per_access"]["median"] / 1e9)
              for r in rows])
    m.family("kvmtune_bench_ratio_vs_4k", "Access time over the 4K-backed walk of the same round (median).",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["ratio_vs_4k"]) for r in rows])
    m.family("kvmtune_bench_first_touch_seconds", "The guest's first write sweep over the working set.",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["first_touch_ms"] / 1000)
              for r in rows if r["first_touch_ms"] is not None])
    m.family("kvmtune_bench_native_access_seconds", "Median time of one random memory access on the host.",
             [({"backing": r["backing"]}, r["ns_per_access"]["median"] / 1e9)
              for r in result["native"] if r["ns_per_access"]])
    exits = result["exits"] or {}
    m.family("kvmtune_bench_exit_seconds", "Median round trip of one VM exit.",
             [({"kind": k[:-3]}, v / 1e6) for k, v in exits.items() if k.endswith("_us") and v is not None])
    m.family("kvmtune_bench_emulated", "1 if the guest ran emulated (the figures do not describe guests).",
             [({}, 1 if result["emulated"] else 0)])
    ksm = result["ksm"]
    if ksm and ksm["merge_s"] is not None:
        m.family("kvmtune_bench_ksm_merge_seconds", "Time ksmd took to merge two identical guest regions.",
                 [({}, ksm["merge_s"])])
    return m.text()
