"""bench results as node_exporter textfile metrics (seconds and ratios, as Prometheus prefers)."""

from __future__ import annotations

from kvmtune.bench.stats import VERDICTS
from kvmtune.render.metrics import Metrics


def render_bench_prometheus(result: dict) -> str:
    m = Metrics()
    rows = [r for r in result["memory"] if r["ns_per_access"]]
    m.family("kvmtune_bench_access_seconds", "Median time of one random memory access in the guest.",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["ns_per_access"]["median"] / 1e9)
              for r in rows])
    m.family("kvmtune_bench_ratio_vs_4k", "Access time over the 4K-backed walk of the same round (median).",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["ratio_vs_4k"]) for r in rows])
    m.family("kvmtune_bench_ratio_vs_4k_interval", "The 95 % bootstrap interval of the ratio over the paired "
             "rounds.", [({"backing": r["backing"], "guest_page": r["guest_page"], "bound": bound}, value)
                         for r in rows if r.get("ratio_vs_4k_ci")
                         for bound, value in zip(("low", "high"), r["ratio_vs_4k_ci"])])
    m.family("kvmtune_bench_verdict", "1 for what the interval supports: faster, slower or not-measurable.",
             [({"backing": r["backing"], "guest_page": r["guest_page"], "verdict": v}, 1 if r["verdict"] == v else 0)
              for r in rows if r.get("verdict") for v in VERDICTS])
    m.family("kvmtune_bench_first_touch_seconds", "The guest's first write sweep over the working set.",
             [({"backing": r["backing"], "guest_page": r["guest_page"]}, r["first_touch_ms"] / 1000)
              for r in rows if r["first_touch_ms"] is not None])
    m.family("kvmtune_bench_native_access_seconds", "Median time of one random memory access on the host.",
             [({"backing": r["backing"]}, r["ns_per_access"]["median"] / 1e9)
              for r in result["native"] if r["ns_per_access"]])
    exits = result["exits"] or {}
    m.family("kvmtune_bench_exit_seconds", "Median round trip of one VM exit.",
             [({"kind": k[:-3]}, v / 1e6) for k, v in exits.items() if k.endswith("_us") and v is not None])
    m.family("kvmtune_bench_exit_cycles", "Median round trip of one VM exit in TSC cycles.",
             [({"kind": k}, v) for k, v in (exits.get("cycles") or {}).items() if v is not None])
    m.family("kvmtune_bench_vm_start_seconds", "Median of 20 fresh VMs: KVM_CREATE_VM, the first vCPU, the "
             "first KVM_RUN.", [({"step": step}, exits[key] / 1000) for step, key in
                               (("create_vm", "vm_create_ms"), ("create_vcpu", "vcpu_create_ms"),
                                ("first_run", "first_run_ms")) if exits.get(key) is not None])
    if exits.get("tsc_mhz"):
        m.family("kvmtune_bench_tsc_hertz", "The TSC rate, calibrated against CLOCK_MONOTONIC.",
                 [({}, exits["tsc_mhz"] * 1e6)])
    m.family("kvmtune_bench_disturbed", "1 if steal time or other tasks disturbed the run.",
             [({}, 1 if result.get("disturbed") else 0)])
    if result.get("steal_pct") is not None:
        m.family("kvmtune_bench_steal_ratio", "Share of CPU time the hypervisor took during the run.",
                 [({}, result["steal_pct"] / 100)])
    m.family("kvmtune_bench_emulated", "1 if the guest ran emulated (the figures do not describe guests).",
             [({}, 1 if result["emulated"] else 0)])
    ksm = result["ksm"]
    if ksm and ksm["merge_s"] is not None:
        m.family("kvmtune_bench_ksm_merge_seconds", "Time ksmd took to merge two identical guest regions.",
                 [({}, ksm["merge_s"])])
    if result.get("noise"):
        _noise(m, result["noise"])
    return m.text()


def _noise(m: Metrics, noise: dict) -> None:
    rows = {cpu: row for cpu, row in noise["cpus"].items() if "error" not in row}
    m.family("kvmtune_bench_noise_detour_seconds", "Detours of a tight TSC loop pinned to the CPU: the longest, "
             "and the 99.9th and 99.99th percentiles over the detours.",
             [({"cpu": cpu, "stat": stat}, row["detours_us"][stat] / 1e6) for cpu, row in rows.items()
              for stat in ("max", "p999", "p9999")])
    m.family("kvmtune_bench_noise_lost_ratio", "Share of the window the loop spent in detours.",
             [({"cpu": cpu}, round(row["lost_ppm"] / 1e6, 7)) for cpu, row in rows.items()])
    m.family("kvmtune_bench_noise_interrupts_per_second", "Interrupts per second on the CPU during the window, by "
             "source (/proc/interrupts).", [({"cpu": cpu, "source": source}, rate) for cpu, row in rows.items()
                                            for source, rate in row["irqs_per_s"].items()])
    m.family("kvmtune_bench_noise_softirqs_per_second", "Softirqs per second on the CPU during the window, by kind.",
             [({"cpu": cpu, "kind": kind}, rate) for cpu, row in rows.items()
              for kind, rate in row["softirqs_per_s"].items()])
    runs: dict[tuple[str, str], int] = {}
    for cpu, row in rows.items():
        for t in row["intruders"]:
            runs[cpu, t["comm"]] = runs.get((cpu, t["comm"]), 0) + t["runs"]
    m.family("kvmtune_bench_noise_other_task_runs", "Times another task was given the CPU during the window.",
             [({"cpu": cpu, "comm": comm}, n) for (cpu, comm), n in runs.items()])
    osnoise = (noise.get("osnoise") or {}).get("cpus") or {}
    m.family("kvmtune_bench_osnoise_noise_seconds", "The kernel's osnoise tracer: noise summed over its periods.",
             [({"cpu": cpu}, row["noise_us"] / 1e6) for cpu, row in osnoise.items()])
    m.family("kvmtune_bench_osnoise_max_single_seconds", "The kernel's osnoise tracer: the longest single noise.",
             [({"cpu": cpu}, row["max_single_us"] / 1e6) for cpu, row in osnoise.items()])
    m.family("kvmtune_bench_osnoise_interferences", "The kernel's osnoise tracer: interference counts by kind.",
             [({"cpu": cpu, "kind": kind}, row[kind]) for cpu, row in osnoise.items()
              for kind in ("hw", "nmi", "irq", "sirq", "thread")])
