"""The fleet at a glance, from many hosts' ``check --json`` results.

Accepted inputs, file by file: a ``kvmtune check --json`` object; the result of
the kvmtune.host.check Ansible module (``ansible ... --tree DIR`` writes one
such file per host); or a ``command`` task's result whose ``stdout`` holds the
JSON. Directories are walked. A file that cannot be read or understood is listed
as invalid with the reason, never dropped.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict

from kvmtune.errors import UsageError

MAX_RESULT = 64 << 20  # a check --json of a 1024-CPU host is under 2 MiB; a guests result more


def collect_files(paths: list[str]) -> list[str]:
    files = []
    for path in paths:
        if os.path.isdir(path):
            for dirpath, dirnames, names in os.walk(path):
                dirnames.sort()
                files += [os.path.join(dirpath, n) for n in sorted(names) if not n.startswith(".")]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return files


def load_result(path: str) -> tuple[dict | None, str | None]:
    """(check report, None) or (None, why it is not one)."""
    from kvmtune.host.inputs import read_input

    try:
        obj = json.loads(read_input(path, MAX_RESULT))
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if isinstance(obj, dict) and "checks" not in obj and isinstance(obj.get("stdout"), str):
        try:
            obj = json.loads(obj["stdout"])
        except ValueError:
            return None, "a command result whose stdout is not kvmtune's JSON"
    if isinstance(obj, dict) and isinstance(obj.get("guests"), list) and isinstance(obj.get("findings"), list) \
            and isinstance(obj.get("host"), dict):
        if obj.get("schema_version") != 1:
            return None, f"schema_version {obj.get('schema_version')!r}, expected 1"
        return obj, None  # a kvmtune guests result
    if not isinstance(obj, dict) or not isinstance(obj.get("checks"), list) or not isinstance(obj.get("host"), dict):
        return None, "not a kvmtune check or guests result (no checks or guests, and no host)"
    if obj.get("schema_version") != 1:
        return None, f"schema_version {obj.get('schema_version')!r}, expected 1"
    return obj, None


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


def summarise(paths: list[str], strict: bool = False) -> dict:
    hosts, invalid, facts = [], [], []
    failing, warning, reasons = Counter(), Counter(), defaultdict(list)
    shapes: dict[str, list[str]] = defaultdict(list)
    pools: dict[str, dict[str, int]] = defaultdict(lambda: {"total": 0, "free": 0, "hosts": 0})
    ksm_saved = 0
    guest_reports = []
    loaded = []
    intent_counts: dict[str, dict[str, int]] = defaultdict(lambda: {"judged": 0, "ready": 0})
    for path in collect_files(paths):
        report, why = load_result(path)
        if report is None:
            invalid.append({"path": path, "error": why})
        else:
            loaded.append((path, report))
    loaded, duplicates = newest_per_host(loaded)
    for path, report in loaded:
        if "guests" in report:
            guest_reports.append((report["host"].get("hostname") or path, report))
            continue
        host = report["host"]
        name = host.get("hostname") or path
        fails = [c["id"] for c in report["checks"] if c.get("status") == "fail" and c.get("id") != "ready"]
        warns = [c["id"] for c in report["checks"] if c.get("status") == "warn"]
        failing.update(fails)
        warning.update(warns)
        why = blocking(report, strict)
        if not why and not report.get("ready"):
            why = own_reasons(report)
        ready = bool(report.get("ready")) and not why
        intents, ready_for = _intents(report, ready, bool(why) and bool(report.get("ready")))
        for intent in intents:
            intent_counts[intent]["judged"] += 1
            intent_counts[intent]["ready"] += intent in ready_for
        for r in why:
            reasons[(r["check"], r["status"], r["detail"])].append(name)
        shape = numa_shape(host)
        shapes[shape].append(name)
        for size, pool in ((host.get("memory") or {}).get("hugepages") or {}).get("pools", {}).items():
            pools[size]["total"] += pool.get("total") or 0
            pools[size]["free"] += pool.get("free") or 0
            pools[size]["hosts"] += 1 if pool.get("total") else 0
        saved = (host.get("ksm") or {}).get("saved_bytes") or 0
        ksm_saved += saved
        facts.append((name, host))
        hosts.append({"name": name, "path": path, "ready": ready, "failing": fails, "reasons": why,
                      "warnings": warns, "numa_shape": shape, "ksm_saved_bytes": saved,
                      "intents": intents, "ready_for": ready_for})
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


def newest_per_host(loaded: list[tuple[str, dict]]) -> tuple[list[tuple[str, dict]], list[dict]]:
    """One result per host and kind (check or guests): the newest file (by modification time,
    a later path on a tie) counts, the others are named in ``duplicates``. A result without a
    hostname is its own host."""
    newest: dict[tuple, tuple[int, int]] = {}
    for i, (path, report) in enumerate(loaded):
        name = (report.get("host") or {}).get("hostname")
        if not name:
            continue
        key = ("guests" in report, name)
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = 0
        if key not in newest or (stamp, i) >= newest[key]:
            newest[key] = (stamp, i)
    kept, dropped = [], defaultdict(list)
    for i, (path, report) in enumerate(loaded):
        name = (report.get("host") or {}).get("hostname")
        key = ("guests" in report, name)
        if name and newest[key][1] != i:
            dropped[key].append(path)
        else:
            kept.append((path, report))
    duplicates = [{"host": key[1], "kind": "guests" if key[0] else "check", "kept": loaded[newest[key][1]][0],
                   "left_out": paths} for key, paths in dropped.items()]
    return kept, duplicates
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
