"""The KSM section: how long ksmd, at this host's settings, takes to merge a guest's duplicates.

Two regions with the same contents page for page, marked mergeable as QEMU marks guest
RAM, are given to a VM as guest memory. KSM is switched on for the run if it is off
(and put back by the guard); the section waits until ksmd has merged them, and
reports the time, the pages saved and the CPU time ksmd spent doing it.
"""

from __future__ import annotations

import os
import time
from array import array

from kvmtune.bench.hostmem import MADV_MERGEABLE, Mapping, madvise
from kvmtune.probe.ksm import KSM_DIR

POLL_S = 0.1
MERGED = 0.95  # of the pages: merged enough to call it done


def _counter(host, name: str) -> int:
    return int(host.read(f"{KSM_DIR}/{name}").strip())


def _merged_here(host, rel: str | None, sharing_before: int) -> int:
    """Pages saved so far by merging this process's two copies. The process's own count
    (kernel 6.1+) is exact: the global pages_sharing also moves when ksmd clears stale
    merges of other processes, which it does only while it runs."""
    if rel is not None:
        return int(host.read(rel).strip()) // 2  # both copies of a page count; one is saved
    return _counter(host, "pages_sharing") - sharing_before


def measure(host, guard, kvm_fd: int | None, pages: int, timeout_s: float, held: list):
    """(the section's result, or None and the reason it was skipped)."""
    if not host.exists(f"{KSM_DIR}/run"):
        return None, "this kernel has no KSM (/sys/kernel/mm/ksm)"
    regions = []
    vm, switched_on, sharing = None, False, 0
    try:
        for _ in range(2):
            mapping = Mapping("4k", pages * 4096)
            regions.append(mapping)
            madvise(mapping.address, mapping.length, MADV_MERGEABLE)
            words = mapping.view()
            # Distinct pages (so merging within a region cannot help), the same in both regions.
            words[::512] = array("Q", range(0x6B766D74756E6500, 0x6B766D74756E6500 + pages))
            words.release()
        if kvm_fd is not None:
            from kvmtune.probe.kvm_api import Vm

            vm = Vm(kvm_fd)
            for i, mapping in enumerate(regions):
                vm.add_memory((i + 1) << 30, mapping.length, mapping.address)
        settings = {k: _counter(host, k) for k in ("pages_to_scan", "sleep_millisecs")}
        sharing = _counter(host, "pages_sharing")
        own = f"proc/{os.getpid()}/ksm_merging_pages"
        own = own if host.exists(own) else None
        cpu_before = host.process_cpu_seconds("ksmd")
        if host.read(f"{KSM_DIR}/run").strip() != "1":
            switched_on = True  # from here on ksmd may merge: let it settle (finally)
            refusal = guard.set_ksm("run", "1")
            if refusal is not None:
                return None, f"KSM could not be switched on: {refusal}"
            guard.notes.append("switched KSM on for the run and put it back")
        began, merged_s, saved = time.perf_counter(), None, 0
        while time.perf_counter() - began < timeout_s:
            time.sleep(POLL_S)
            saved = _merged_here(host, own, sharing)
            if saved >= MERGED * pages:
                merged_s = time.perf_counter() - began
                break
        cpu_after = host.process_cpu_seconds("ksmd")
        cpu_s = cpu_after - cpu_before if None not in (cpu_before, cpu_after) else None
        return {"pages": pages, "merged": merged_s is not None,
                "merge_s": round(merged_s, 2) if merged_s is not None else None, "timeout_s": timeout_s,
                "pages_saved": max(saved, 0), "saved_bytes": max(saved, 0) * 4096,
                "ksmd_cpu_s": round(cpu_s, 2) if cpu_s is not None else None, "settings": settings}, None
    finally:
        if vm is not None:
            vm.close()
        for mapping in regions:
            mapping.free()
        if switched_on:
            _settle(host, sharing)


def _settle(host, sharing_before: int, timeout_s: float = 5.0) -> None:
    """Let ksmd, still on, drop its merges of the freed regions: stopped first, it would leave
    pages_sharing showing pages that no longer exist until it next runs."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end and _counter(host, "pages_sharing") > sharing_before:
        time.sleep(POLL_S)
