"""numa, memory.hugepages, memory.thp and ksm: how guest memory will be backed."""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, UNKNOWN, WARN, Check, unknown
from kvmtune.probe.hugepages import size_label
from kvmtune.probe.parse import format_cpulist


def _mib(kb: int | None) -> str:
    return "?" if kb is None else f"{kb / 1024:.0f} MiB" if kb < 10 << 20 else f"{kb / (1 << 20):.0f} GiB"


def check_numa(facts: Facts) -> Check:
    title = TITLES["numa"]
    numa = facts.numa
    data = numa.to_json()
    if not numa.nodes:
        if numa.problems:
            return unknown("numa", title, numa.problems, data)
        return Check("numa", UNKNOWN, title, "no /sys/devices/system/node to read", None, data)
    parts = [f"node{n.id}: cpus {format_cpulist(list(n.cpus)) or 'none'}, {_mib(n.mem_total_kb)}"
             for n in numa.nodes]
    detail = f"{len(numa.nodes)} node{'s' if len(numa.nodes) > 1 else ''} ({'; '.join(parts)})"
    starved = [n.id for n in numa.nodes if n.cpus and n.mem_total_kb == 0]
    if starved:
        return Check("numa", WARN, title, detail + f"; nodes {starved} have CPUs but no memory",
                     "Guests pinned to those CPUs always use remote memory: pin them with their "
                     "memory's node instead.", data)
    if len(numa.nodes) > 1 and numa.balancing:
        detail += "; automatic NUMA balancing is on"
        return Check("numa", INFO, title, detail,
                     "For guests pinned to nodes, turn balancing off: 'sysctl kernel.numa_balancing=0' "
                     "(kvmtune's latency profile does this).", data)
    return Check("numa", INFO, title, detail, None, data)


def check_hugepages(facts: Facts) -> Check:
    title = TITLES["memory.hugepages"]
    hp = facts.hugepages
    data = hp.to_json()
    if hp.problems:
        return unknown("memory.hugepages", title, hp.problems, data)
    if not hp.pools:
        if hp.captured:
            return Check("memory.hugepages", INFO, title, "the kernel has no HugeTLB support", None, data)
        return Check("memory.hugepages", UNKNOWN, title, "no /sys/kernel/mm/hugepages to read", None, data)
    pools = "; ".join(
        f"{size_label(p.size_kb)}: {p.total} pages, {p.free} free"
        + (f", {p.surplus} surplus" if p.surplus else "") for p in hp.pools)
    reserved = [p for p in hp.pools if p.total]
    if not reserved:
        return Check("memory.hugepages", INFO, title,
                     f"no huge pages reserved ({pools}): guests use THP or 4 KiB pages", None, data)
    if not hp.mounts_captured:
        return Check("memory.hugepages", INFO, title, f"{pools}; mounts not captured", None, data)
    mounted = {hp.mount_size_kb(m) for m in hp.mounts}
    unmounted = [p for p in reserved if p.size_kb not in mounted]
    if unmounted:
        labels = ", ".join(size_label(p.size_kb) for p in unmounted)
        first = size_label(unmounted[0].size_kb)
        return Check("memory.hugepages", WARN, title,
                     f"{pools}; no hugetlbfs mount serves {labels}: QEMU cannot back guests with them",
                     f"Mount one: 'mount -t hugetlbfs -o pagesize={first} hugetlbfs /dev/hugepages{first}' "
                     "(or a profile's hugetlbfs section), then restart libvirtd/virtqemud.", data)
    return Check("memory.hugepages", PASS, title,
                 f"{pools}; mounted at {', '.join(m.target for m in hp.mounts)}", None, data)


def _absent(captured: bool, check_id: str, title: str, rel: str, what: str) -> Check:
    if captured:
        return Check(check_id, INFO, title, f"the kernel has no {what}")
    return Check(check_id, UNKNOWN, title, f"no /{rel} to read (not captured in this snapshot)")


def check_thp(facts: Facts) -> Check:
    title = TITLES["memory.thp"]
    thp = facts.thp
    data = thp.to_json()
    if thp.problems and not thp.available:
        return unknown("memory.thp", title, thp.problems, data)
    if not thp.available:
        return _absent(thp.captured, "memory.thp", title, "sys/kernel/mm/transparent_hugepage",
                       "transparent huge pages")
    detail = f"enabled={thp.values['enabled']}, defrag={thp.values['defrag']}"
    if thp.cmdline:
        detail += f" (transparent_hugepage={thp.cmdline} on the kernel command line)"
    if thp.values["enabled"] == "never":
        return Check("memory.thp", WARN, title, detail + ": guest RAM gets no huge pages unless on hugetlbfs",
                     "QEMU marks guest RAM with madvise(MADV_HUGEPAGE), so 'madvise' is enough: "
                     "'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' (a profile's "
                     "thp section keeps it; takes effect for guests started afterwards).", data)
    return Check("memory.thp", PASS, title, detail, None, data)


def check_ksm(facts: Facts) -> Check:
    title = TITLES["ksm"]
    ksm = facts.ksm
    data = ksm.to_json()
    if not ksm.available:
        if ksm.problems:
            return unknown("ksm", title, ksm.problems, data)
        return _absent(ksm.captured, "ksm", title, "sys/kernel/mm/ksm", "KSM")
    run = ksm.get("run")
    policy = _policy(facts, run, data)
    if policy is not None and policy.status == WARN:
        return policy
    said = f"; {policy.detail}" if policy else ""
    sharing = ksm.get("pages_sharing") or 0
    saved = f"saves {ksm.saved_bytes / (1 << 20):.1f} MiB ({sharing} pages sharing, {ksm.get('pages_shared') or 0} shared)"
    if run == 1:
        detail = f"running, {saved}"
        if len(facts.node_ids) > 1 and ksm.get("merge_across_nodes") == 1:
            return Check("ksm", WARN, title, detail + "; merges pages across NUMA nodes" + said,
                         "Guests then read merged pages from remote nodes: set merge_across_nodes=0 "
                         "(only possible after 'echo 2 > /sys/kernel/mm/ksm/run' unmerges; kvmtune's "
                         "dense profile does this).", data)
        return Check("ksm", INFO, title,
                     detail + "; merging across tenants is a side channel: use it for trusted guests only" + said,
                     None, data)
    if run == 0 and sharing:
        detail = f"stopped, keeps merged pages: {saved}"
    else:
        detail = {0: "off", 2: "stopped, unmerging"}.get(run, f"run={run}")
    return Check("ksm", INFO, title, detail + said, None, data)


def _policy(facts: Facts, run, data: dict) -> Check | None:
    """The pressure policy's last decision (tune.ksm_decide), where kvmtune recorded one: a
    Check holding the words to add, or a warning when the kernel no longer holds it."""
    from kvmtune.checks.facts import FactUnknown

    try:
        record = facts.ksm_policy
    except FactUnknown as exc:
        return Check("ksm", INFO, TITLES["ksm"], f"the policy's last decision is unreadable ({exc.reason})")
    if record is None:
        return None
    from kvmtune.tune.ksm_decide import from_record

    decision, policy = from_record(record)
    data["policy"] = {"kind": "pressure", "threshold_percent": policy.threshold,
                      "hysteresis_percent": policy.hysteresis, "pages_to_scan": [policy.pages_min, policy.pages_max],
                      "last_decision": record}
    words = f"policy {policy.describe()}; last decision ({decision.at}): {decision.reason}"
    if run != decision.run:
        return Check("ksm", WARN, TITLES["ksm"], f"run={run}, but the {words}: something else changed KSM since",
                     "Find who (ksmtuned rewrites run every 60 s: 'systemctl disable --now ksmtuned'); "
                     "'kvmtune watch --once' carries the policy out again.", data)
    return Check("ksm", INFO, TITLES["ksm"], words)
