"""The fleet at a glance, from many hosts' ``check --json`` results.

The inputs are those kvmtune.fleet.load accepts (check and guests results, as files, Ansible
trees or command results); a file that cannot be read or understood is listed as invalid with
the reason, never dropped.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from kvmtune.fleet.load import ALL, CPU_FIELDS, EACH, load_results, newest_per_host

# Everything report reads of a result: the rest is freed as soon as a file is parsed.
FIELDS = {
    "schema_version": ALL, "ready": ALL, "intents": ALL, "ready_for": ALL,
    "checks": [{"id": ALL, "status": ALL, "detail": ALL}],
    "guests": [{"name": ALL, "pid": ALL, "memory": ALL, "numa": {"locality": ALL}}],
    "host": {"hostname": ALL, "numa": {"nodes": {EACH: {"cpus": ALL, "mem_total_kb": ALL}}},
             "memory": {"hugepages": {"pools": {EACH: {"total": ALL, "free": ALL}}}},
             "ksm": {"saved_bytes": ALL}, "cpu": CPU_FIELDS, "qemu": ALL},
}


def numa_shape(host: dict) -> str:
    nodes = (host.get("numa") or {}).get("nodes") or {}
    if not nodes:
        return "unknown"
    cpus = sorted({len(n.get("cpus") or []) for n in nodes.values()})
    mem = sorted({round((n.get("mem_total_kb") or 0) / (1 << 20)) for n in nodes.values()})
    cpu_text = "/".join(map(str, cpus))
    mem_text = "/".join(map(str, mem))
    return f"{len(nodes)} node{'s' if len(nodes) > 1 else ''} x {cpu_text} CPUs, {mem_text} GiB"


def blocking(report: dict, strict: bool) -> list[dict]:
    """The checks that keep a host from being ready (with strict, warnings and unknowns too)."""
    statuses = ("fail", "warn", "unknown") if strict else ("fail",)
    essential = ("kvm.device", "kvm.functional")  # readiness needs them decided (see kvmtune.checks)
    return [{"check": c.get("id"), "status": c.get("status"), "detail": c.get("detail") or ""}
            for c in report["checks"] if c.get("id") != "ready"
            and (c.get("status") in statuses or (c.get("id") in essential and c.get("status") == "unknown"))]


def own_reasons(report: dict) -> list[dict]:
    """Why a result calls its host not ready when nothing fails: it was made with check --strict
    (its warnings and unknowns), or, failing those, its own verdict row."""
    why = blocking(report, True)
    if why:
        return why
    row = next((c for c in report["checks"] if c.get("id") == "ready"), None) or {}
    return [{"check": "ready", "status": row.get("status") or "fail",
             "detail": row.get("detail") or "the result says not ready and names no check"}]


def judge_host(path: str, report: dict, strict: bool) -> dict:
    """One check result as report counts it: its row, its huge page pools and its CPU facts.
    Made in the worker that parsed the file (fleet.load's post), so only this crosses back."""
    host = report["host"]
    name = host.get("hostname") or path
    fails = [c["id"] for c in report["checks"] if c.get("status") == "fail" and c.get("id") != "ready"]
    warns = [c["id"] for c in report["checks"] if c.get("status") == "warn"]
    why = blocking(report, strict)
    if not why and not report.get("ready"):
        why = own_reasons(report)
    ready = bool(report.get("ready")) and not why
    intents, ready_for = _intents(report, ready, bool(why) and bool(report.get("ready")))
    pools = {size: (pool.get("total") or 0, pool.get("free") or 0)
             for size, pool in ((host.get("memory") or {}).get("hugepages") or {}).get("pools", {}).items()}
    row = {"name": name, "path": path, "ready": ready, "failing": fails, "reasons": why, "warnings": warns,
           "numa_shape": numa_shape(host), "ksm_saved_bytes": (host.get("ksm") or {}).get("saved_bytes") or 0,
           "intents": intents, "ready_for": ready_for}
    return {"row": row, "pools": pools, "facts": {"cpu": host.get("cpu"), "qemu": host.get("qemu")}}


def summarise(paths: list[str], strict: bool = False) -> dict:
    hosts, invalid, facts = [], [], []
    failing, warning, reasons = Counter(), Counter(), defaultdict(list)
    shapes: dict[str, list[str]] = defaultdict(list)
    pools: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "free": 0, "hosts": 0})
    ksm_saved = 0
    guest_reports = []
    loaded = []
    intent_counts: dict[str, dict[str, int]] = defaultdict(lambda: {"judged": 0, "ready": 0})

    def post(path, kind, report, memo):
        return judge_host(path, report, strict) if kind == "check" else report

    for item in load_results(paths, FIELDS, post=post):
        if item.error is not None:
            invalid.append({"path": item.path, "error": item.error})
        else:
            loaded.append(item)
    loaded, duplicates = newest_per_host(loaded)
    for item in loaded:
        if item.kind == "guests":
            guest_reports.append((item.hostname or item.path, item.result))
            continue
        h = item.result["row"]
        failing.update(h["failing"])
        warning.update(h["warnings"])
        for intent in h["intents"]:
            intent_counts[intent]["judged"] += 1
            intent_counts[intent]["ready"] += intent in h["ready_for"]
        for r in h["reasons"]:
            reasons[(r["check"], r["status"], r["detail"])].append(h["name"])
        shapes[h["numa_shape"]].append(h["name"])
        for size, (total, free) in item.result["pools"].items():
            pools[size]["total"] += total
            pools[size]["free"] += free
            pools[size]["hosts"] += 1 if total else 0
        ksm_saved += h["ksm_saved_bytes"]
        facts.append((h["name"], item.result["facts"]))
        hosts.append(h)
    ready = sum(h["ready"] for h in hosts)
    return {
        "hosts": hosts,
        "invalid": invalid,
        "duplicates": duplicates,
        "counts": {"hosts": len(hosts), "ready": ready, "not_ready": len(hosts) - ready, "invalid": len(invalid)},
        "intents": {name: dict(v) for name, v in intent_counts.items()},
        "strict": strict,
        "reasons": [{"check": c, "status": s, "detail": d, "hosts": sorted(h)}
                    for (c, s, d), h in sorted(reasons.items(), key=lambda x: (-len(x[1]), x[0]))],
        "top_failing": [{"check": c, "hosts": n} for c, n in failing.most_common()],
        "top_warnings": [{"check": c, "hosts": n} for c, n in warning.most_common()],
        "numa_shapes": [{"shape": s, "hosts": sorted(h)} for s, h in sorted(shapes.items(), key=lambda x: -len(x[1]))],
        "hugepages": {size: dict(v) for size, v in sorted(pools.items(), key=lambda x: int(x[0]))},
        "ksm_saved_bytes": ksm_saved,
        "cpu_baseline": _cpu_baseline(facts),
        "guests": guests_summary(guest_reports),
    }


def _intents(report: dict, ready: bool, stricter: bool) -> tuple[list[str], list[str]]:
    """What a result was judged for and is ready for. A result from before intents was judged for
    general alone; one that --strict here finds not ready is ready for none of them."""
    intents = [i for i in report.get("intents") or ["general"] if isinstance(i, str)]
    given = report.get("ready_for")
    if not isinstance(given, list):
        given = intents if ready else []
    return intents, [] if stricter else [i for i in given if i in intents]


OFF_HUGE = 0.05  # of resident guest RAM on 4K pages: a guest "off huge pages"
LOW_LOCALITY = 0.95


def guests_summary(reports: list[tuple[str, dict]]) -> dict | None:
    """kvmtune guests results across hosts: guests off huge pages, guests below locality."""
    if not reports:
        return None
    off, far, total = [], [], 0
    for host, report in reports:
        for g in report["guests"]:
            if not isinstance(g, dict):
                continue
            total += 1
            mem = g.get("memory") or {}
            small = mem.get("small_kb") or 0
            resident = small + (mem.get("thp_kb") or 0) + sum((mem.get("hugetlb_kb") or {}).values())
            if resident and small > OFF_HUGE * resident:
                off.append({"host": host, "guest": g.get("name"), "pid": g.get("pid"), "small_kb": small,
                            "share": round(small / resident, 3)})
            locality = (g.get("numa") or {}).get("locality")
            if locality is not None and locality < LOW_LOCALITY:
                far.append({"host": host, "guest": g.get("name"), "pid": g.get("pid"), "locality": locality})
    return {"hosts": len(reports), "guests": total, "off_hugepages": off, "low_locality": far}


def _cpu_baseline(facts: list) -> dict | None:
    """The guest CPU model the whole fleet can run (the same logic as cpu-baseline)."""
    if not facts:
        return None
    from kvmtune.cpumodels.baseline import baseline

    out = baseline(facts)
    return {k: out.get(k) for k in ("baseline", "extras", "qemu", "qemu_models_from", "warnings", "held_back")}
