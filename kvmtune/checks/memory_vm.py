"""memory.swap, memory.zswap, memory.overcommit, memory.fragmentation: what backs guest memory
when the host runs short of it, and how many huge pages it could still hand out."""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, TITLES, UNKNOWN, WARN, Check
from kvmtune.probe.hugepages import size_label

X86_SIZES = (2048, 1 << 20)


def _gib(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB" if kb < 10 << 20 else f"{kb / (1 << 20):.1f} GiB"


def check_swap(facts: Facts) -> Check:
    title, vm, meminfo = TITLES["memory.swap"], facts.vm, facts.meminfo[0]
    data = {"swap_kb": meminfo.get("SwapTotal"), "swap_free_kb": meminfo.get("SwapFree"),
            "swappiness": vm.swappiness, "profile_swappiness": vm.profile_swappiness}
    if "SwapTotal" not in meminfo or vm.swappiness is None:
        return Check("memory.swap", UNKNOWN, title, "no /proc/meminfo SwapTotal or /proc/sys/vm/swappiness to read"
                     + ("" if facts.live else " (not captured in this snapshot)"), None, data)
    total = meminfo["SwapTotal"]
    swap = (f"swap {_gib(total)} ({_gib(total - meminfo.get('SwapFree', total))} used)" if total
            else "no swap: an overcommitted host's only backstop is the OOM killer")
    detail = f"{swap}; vm.swappiness={vm.swappiness}"
    want = vm.profile_swappiness
    if want is not None and want.strip() != str(vm.swappiness):
        return Check("memory.swap", WARN, title,
                     f"{detail}, but kvmtune's /etc/sysctl.d drop-in (the applied profile) sets {want}",
                     "Something set it since: 'kvmtune verify PROFILE' names it; 'sysctl --system' "
                     "or 'kvmtune apply PROFILE' puts the profile's value back.", data)
    if want is not None:
        return Check("memory.swap", INFO, title, f"{detail}, as the applied profile sets", None, data)
    hint = None
    if total and vm.swappiness > 10:
        hint = "Keep guest RAM out of swap until memory is really short: vm.swappiness=10 (kvmtune's kvm-host profile)."
    return Check("memory.swap", INFO, title, detail, hint, data)


def check_zswap(facts: Facts) -> Check:
    title, zswap = TITLES["memory.zswap"], facts.vm.zswap
    swap = facts.meminfo[0].get("SwapTotal")
    if zswap is None:
        where = "the kernel has no zswap" if facts.live else "no /sys/module/zswap in this snapshot (absent or not captured)"
        return Check("memory.zswap", INFO, title, where, None, {"zswap": None})
    data = {"zswap": zswap}
    on = zswap.get("enabled") in ("Y", "1")
    if not on:
        detail = "off" + ("" if swap else " (and no swap for it to sit in front of)")
        hint = ("With swap, zswap keeps swapped-out guest pages compressed in RAM first: "
                "'echo Y > /sys/module/zswap/parameters/enabled' (or zswap.enabled=1 at boot).") if swap else None
        return Check("memory.zswap", INFO, title, detail, hint, data)
    how = f"compressor {zswap.get('compressor', '?')}, pool up to {zswap.get('max_pool_percent', '?')}% of RAM"
    if not swap:
        return Check("memory.zswap", INFO, title, f"enabled ({how}) but no swap: zswap only caches pages on their "
                     "way to a swap device, so it does nothing here", None, data)
    return Check("memory.zswap", INFO, title, f"enabled ({how}): swapped guest pages are compressed in RAM first",
                 None, data)


def check_overcommit(facts: Facts) -> Check:
    title, vm, meminfo = TITLES["memory.overcommit"], facts.vm, facts.meminfo[0]
    mode, ratio = vm.overcommit_memory, vm.overcommit_ratio
    if mode is None or "MemTotal" not in meminfo:
        return Check("memory.overcommit", UNKNOWN, title, "no /proc/sys/vm/overcommit_memory or MemTotal to read"
                     + ("" if facts.live else " (not captured in this snapshot)"))
    guests = facts.guests
    usable = meminfo["MemTotal"] - meminfo.get("Hugetlb", 0)  # HugeTLB pools are never overcommitted
    ram = sum(_guest_ram(g)[0] for g in guests.guests) if guests.processes else None
    data = {"overcommit_memory": mode, "overcommit_ratio": ratio, "host_kb": usable,
            "guests_ram_kb": ram, "commit_limit_kb": meminfo.get("CommitLimit"),
            "committed_as_kb": meminfo.get("Committed_AS")}
    words = {0: "heuristic", 1: "always", 2: "strict"}.get(mode, f"mode {mode}")
    detail = f"vm.overcommit_memory={mode} ({words})"
    if ram is not None and guests.guests:
        detail += f"; running guests' RAM {_gib(ram)} of {_gib(usable)} ({100 * ram / usable:.0f}%)" if usable else ""
    elif ram is not None:
        detail += f"; no running guests, {_gib(usable)} for them"
    else:
        detail += "; running guests not available in a snapshot"
    if mode == 2:
        limit = meminfo.get("CommitLimit")
        detail += f", vm.overcommit_ratio={ratio}: CommitLimit {_gib(limit or 0)}, committed {_gib(meminfo.get('Committed_AS', 0))}"
        if limit is not None and limit < usable * 0.9:
            return Check("memory.overcommit", WARN, title, detail + ": guests fail to start long before RAM is used",
                         "Strict accounting counts all guest RAM at start: raise vm.overcommit_ratio (CommitLimit = "
                         "swap + RAM x ratio %) or use vm.overcommit_memory=0.", data)
        return Check("memory.overcommit", INFO, title, detail, None, data)
    if ram is not None and ram > usable:
        ksm = facts.ksm
        backstop = meminfo.get("SwapTotal") or (ksm.available and ksm.get("run") == 1)
        if not backstop:
            return Check("memory.overcommit", WARN, title, detail + ", with no swap and KSM off",
                         "Guests that touch all their RAM will wake the OOM killer, which ends a guest: add swap, "
                         "or run KSM under pressure (a profile's ksm: {policy: pressure}), or start fewer guests.", data)
        return Check("memory.overcommit", INFO, title, detail + ": overcommitted, swap or KSM behind it", None, data)
    return Check("memory.overcommit", INFO, title, detail, None, data)


def _guest_ram(guest) -> tuple[int, int]:
    """(RAM outside HugeTLB pools, kB; on hugetlbfs, kB): what it asked for, else what is mapped."""
    huge = sum(m.size_kb for m in guest.mappings if m.source == "hugetlbfs")
    total = guest.ram_kb if guest.ram_kb is not None else sum(m.size_kb for m in guest.mappings)
    return max(total - huge, 0), huge


def check_fragmentation(facts: Facts) -> Check:
    title, frag = TITLES["memory.fragmentation"], facts.fragmentation
    if frag is None:
        where = "the kernel has no /proc/buddyinfo" if facts.live else "no /proc/buddyinfo to read (not captured in this snapshot)"
        return Check("memory.fragmentation", INFO if facts.live else UNKNOWN, title, where)
    pools = facts.hugepage_pools
    sizes = sorted(pools[0]) if pools and pools[0] else list(X86_SIZES)
    data = {"now": {}, "after_compaction": {}, "exact": {}, "problems": list(frag.problems)}
    parts = []
    for size in sizes:
        now, exact = frag.pages_now(size)
        after = frag.pages_compacted(size)
        label = size_label(size)
        data["now"][label], data["exact"][label], data["after_compaction"][label] = now, exact, after
        parts.append(f"{'' if exact else 'at most '}{now} x {label}"
                     + (f" (at most {after} after compaction)" if after is not None else ""))
    detail = "free now, without compaction: " + ", ".join(parts)
    if len(frag.nodes) > 1:
        data["per_node"] = {str(n): {size_label(s): frag.pages_now(s, n)[0] for s in sizes} for n in frag.nodes}
    if frag.problems:
        detail += f" ({'; '.join(frag.problems)}: no bound after compaction)"
    return Check("memory.fragmentation", INFO, title, detail, None, data)
