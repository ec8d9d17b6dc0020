"""kvmtune guests as node_exporter textfile metrics, one series per guest."""

from __future__ import annotations

from kvmtune.render.metrics import Metrics


def render_guests_prometheus(report: dict) -> str:
    m = Metrics()
    guests = report["guests"]

    def ids(g: dict, **more) -> dict:
        return {"guest": g["name"], "pid": g["pid"], "vmm": g["vmm"], **more}

    m.family("kvmtune_guests", "Running KVM guests (processes holding a KVM VM descriptor, and VMM processes "
             "this user may not inspect).", [({}, len(guests) + len(report["hidden"]))])
    m.family("kvmtune_guests_not_inspectable", "VMM processes this user may not inspect: their facts are unknown.",
             [({}, len(report["hidden"]))])
    m.family("kvmtune_guest_memory_bytes", "Guest RAM by how the host backs it: hugetlb page size, thp, small, "
             "and untouched (not used yet by the guest).",
             [(ids(g, backing=f"hugetlb-{k}kB"), v * 1024) for g in guests for k, v in g["memory"]["hugetlb_kb"].items()]
             + [(ids(g, backing="thp"), g["memory"]["thp_kb"] * 1024) for g in guests]
             + [(ids(g, backing="small"), g["memory"]["small_kb"] * 1024) for g in guests]
             + [(ids(g, backing="untouched"), g["memory"]["untouched_kb"] * 1024) for g in guests])
    m.family("kvmtune_guest_numa_locality", "Share of guest RAM on the nodes its vCPUs ran on last (0-1).",
             [(ids(g), g["numa"]["locality"]) for g in guests if g["numa"]["locality"] is not None])
    m.family("kvmtune_guest_vcpus", "vCPU threads of the guest.", [(ids(g), len(g["vcpus"])) for g in guests])
    m.family("kvmtune_guest_vcpus_pinned", "1 if every vCPU is pinned to its own CPU.",
             [(ids(g), 1 if g["pinned_one_to_one"] else 0) for g in guests])
    m.family("kvmtune_guest_ksm_merging_pages", "Pages of the guest's memory KSM has merged.",
             [(ids(g), (g["ksm"] or {}).get("merging_pages", 0)) for g in guests if g["ksm"]])
    m.family("kvmtune_guests_finding", "1 for the status each guests finding has now.",
             [({"finding": f["id"], "status": f["status"]}, 1) for f in report["findings"]])
    return m.text()
