"""What a bench result records about the host: CPU, kernel, KVM flavour, THP, pools, memory."""

from __future__ import annotations

import os

from kvmtune.probe import parse
from kvmtune.probe.hugepages import read_global_pools, size_label
from kvmtune.tune.pools import safe_reserve_kb

GUEST_PAGES = ("2M", "4K")


def describe_host(host) -> dict:
    from kvmtune.probe.cpu import parse_cpuinfo

    first = parse_cpuinfo(host.read("proc/cpuinfo")).first
    flags = set(first.get("flags", "").split())
    if "vmx" in flags:
        flavour = "vmx"
    elif "svm" in flags:
        flavour = "svm"
    elif host.exists("sys/module/kvm_pvm"):
        flavour = "pvm"
    else:
        flavour = "unknown"
    meminfo = parse.kv_kb(host.read("proc/meminfo"))
    pools, _ = read_global_pools(host)
    thp = {}
    for knob in ("enabled", "defrag"):
        text = host.read_optional(f"sys/kernel/mm/transparent_hugepage/{knob}")
        thp[knob] = parse.bracketed(text) if text else None
    return {
        "cpu_model": first.get("model name"),
        "cpus": len(os.sched_getaffinity(0)),
        "kernel": host.read("proc/sys/kernel/osrelease").strip(),
        "kvm_flavour": flavour,
        "memory_kb": meminfo.get("MemTotal"),
        "available_kb": meminfo.get("MemAvailable"),
        "thp": thp,
        "pools": {size_label(kb): {"total": v[0], "free": v[1]} for kb, v in sorted(pools.items())},
        "guest_pages": list(GUEST_PAGES),
        "largest_guest_page": "2M",
    }


def usable_kb(described: dict) -> tuple[int, int]:
    """(kB the run may use without eating into apply's safe reserve, the reserve), from
    describe_host's memory figures."""
    reserve = safe_reserve_kb(described["memory_kb"] or 0)
    return (described["available_kb"] or 0) - reserve, reserve
