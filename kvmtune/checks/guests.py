"""Judge the running guests: huge pages, NUMA locality, pinning, KSM. Pure: facts in, findings out.

The same findings make ``kvmtune guests`` and the one ``guests`` line of ``check``.
Hints speak the guest's language: the libvirt domain XML element for a libvirt guest,
the QEMU option for a bare QEMU, the VMM's own setting otherwise.
"""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks import model
from kvmtune.checks.model import INFO, PASS, WARN, Check
from kvmtune.probe.hugepages import size_label

HUGE_ENOUGH = 0.95  # of resident guest RAM on huge pages
LOCAL_ENOUGH = 0.95
TITLES = {
    "guests.hugepages": "Guest RAM on huge pages",
    "guests.numa": "Guest RAM on its vCPUs' NUMA nodes",
    "guests.pinning": "vCPU and emulator thread placement",
    "guests.ksm": "KSM and guest memory",
    "guests.inspect": "Guests this user may not inspect",
}
FINDINGS = tuple(TITLES)


def _mib(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB"


def label(g) -> str:
    return f"{g.name} (pid {g.pid})"


def isolated_cpus(facts: Facts) -> tuple:
    """The CPUs isolated by any means (cpu.isolation's facts), () if unknown."""
    isolation = facts.known("isolation")
    return isolation.all_isolated if isolation is not None else ()


def memory(g) -> dict:
    from kvmtune.probe.guest_memory import backing

    out = backing(list(g.mappings))
    out["total_kb"] = g.ram_kb if g.ram_kb is not None else sum(m.size_kb for m in g.mappings)
    resident = sum(out["hugetlb_kb"].values()) + out["thp_kb"] + out["small_kb"]
    out["untouched_kb"] = max(out["total_kb"] - resident, 0)  # RAM the guest has not used yet
    out["mappings"] = len(g.mappings)
    return out


def node_of_cpu(numa) -> dict[int, int]:
    return {cpu: n.id for n in (numa.nodes if numa else ()) for cpu in n.cpus}


def placement(g, cpu_nodes: dict[int, int]) -> dict:
    by_node: dict[int, int] = {}
    for m in g.mappings:
        for node, kb in m.nodes_kb.items():
            by_node[node] = by_node.get(node, 0) + kb
    vcpu_nodes = [cpu_nodes.get(t.last_cpu) for _, t, _ in g.vcpus]
    total = sum(by_node.values())
    known = [n for n in vcpu_nodes if n is not None]
    locality = (sum(by_node.get(n, 0) for n in known) / (total * len(known))) if total and known else None
    return {"pages_kb_by_node": {str(k): v for k, v in sorted(by_node.items())}, "vcpu_nodes": vcpu_nodes,
            "locality": round(locality, 3) if locality is not None else None}


def pinned_one_to_one(g) -> bool:
    sets = [t.allowed for _, t, _ in g.vcpus]
    return bool(sets) and all(len(s) == 1 for s in sets) and len({s[0] for s in sets}) == len(sets)


def guest_json(g, cpu_nodes: dict[int, int]) -> dict:
    emulator = sorted({c for t in g.others for c in t.allowed})
    return {
        "pid": g.pid, "name": g.name, "vmm": g.vmm, "libvirt": g.libvirt,
        "memory": memory(g),
        "numa": placement(g, cpu_nodes),
        "vcpus": [{"index": i, "tid": t.tid, "allowed": list(t.allowed), "last_cpu": t.last_cpu, "found_by": how}
                  for i, t, how in g.vcpus],
        "vcpu_fds": g.vcpu_fds,
        "emulator_threads": {"count": len(g.others), "allowed": emulator},
        "pinned_one_to_one": pinned_one_to_one(g),
        "ksm": g.ksm,
    }


def _hint(g, libvirt: str, qemu: str, other: str) -> str:
    if g.libvirt:
        return f"{label(g)}: {libvirt}"
    if g.vmm == "qemu":
        return f"{label(g)}: {qemu}"
    return f"{label(g)}: {other}"


def _backing_hint(g, b) -> str:
    from kvmtune.checks.guest_backing import libvirt_element, prepare, qemu_option

    if b is None:
        return _hint(g, "<memoryBacking><hugepages/></memoryBacking> in the domain XML, then restart it",
                     "back its RAM with a hugetlbfs file (-object memory-backend-file) of a whole number of pages",
                     "back its RAM with a hugetlbfs file or MAP_HUGETLB (see its memory options)")
    first = prepare(b)
    first = f"{first}, then " if first else ""
    return _hint(g, f"{first}{libvirt_element(b)} in the domain XML, then restart it",
                 f"{first}start it with '{qemu_option(b)}'",
                 f"{first}back its RAM with a hugetlbfs file on that mount (see its memory options)")


def check_hugepages(facts: Facts, guests) -> Check:
    from kvmtune.checks.guest_backing import plan_for_host
    from kvmtune.probe.guest_memory import untouched_outside_hugetlb

    hp = facts.known("hugepages")
    pools = [p for p in (hp.pools if hp else ()) if (p.total or 0) > 0]
    pool_text = ", ".join(f"{p.free or 0} of {p.total} {size_label(p.size_kb)} pages free" for p in pools)
    short, wanting, data, partial = [], [], {}, False
    for g in guests:
        mem = memory(g)
        huge = sum(mem["hugetlb_kb"].values()) + mem["thp_kb"]
        total = mem["total_kb"] or huge + mem["small_kb"]
        unsure = untouched_outside_hugetlb(g.mappings)
        data[str(g.pid)] = {"huge_kb": huge, "small_kb": mem["small_kb"], "untouched_kb": mem["untouched_kb"]}
        # judged against the whole RAM: 6 MiB on THP of a 256 MiB guest is not "on huge pages"
        off = mem["small_kb"] > (1 - HUGE_ENOUGH) * total
        if not off and unsure <= (1 - HUGE_ENOUGH) * total:
            continue
        wanting.append(g)
        partial = partial or (off and bool(huge))  # THP gave out partway: worth a warning without pools
        if off:
            share = mem["small_kb"] / total
            what = "on 4K pages" if not huge and not unsure else f"{_mib(mem['small_kb'])} ({share:.0%}) on 4K pages"
        else:
            what = f"{_mib(huge)} on huge pages"
        if unsure:
            what += f", {_mib(unsure)} of {_mib(total)} not touched yet (its backing is not known until it is)"
        short.append(f"{label(g)} {what}")
    title = TITLES["guests.hugepages"]
    if not short:
        return Check("guests.hugepages", PASS, title, f"every guest's RAM is on huge pages ({len(guests)})", None, data)
    plans = plan_for_host(hp, [(g.pid, memory(g)["total_kb"]) for g in wanting])
    hints = [_backing_hint(g, plans.get(g.pid)) for g in wanting]
    status = WARN if pools or partial else INFO
    need = {}
    for b in plans.values():
        if b.short:
            need[b.page_kb] = max(need.get(b.page_kb, 0), b.pool_total)
    grow = "".join(f"; {size_label(k)} pool to grow to {v} pages for these guests" for k, v in sorted(need.items()))
    detail = "; ".join(short) + (f"; the host has {pool_text}" if pools else "; the host has no huge page pools")
    return Check("guests.hugepages", status, title, detail + grow, " | ".join(hints), data)


def check_numa(facts: Facts, guests) -> Check:
    title = TITLES["guests.numa"]
    numa = facts.known("numa")
    if numa is None or len(numa.nodes) <= 1:
        return Check("guests.numa", PASS, title, "one NUMA node: every guest is local")
    cpu_nodes = node_of_cpu(numa)
    poor, hints = [], []
    for g in guests:
        where = placement(g, cpu_nodes)
        if where["locality"] is not None and where["locality"] < LOCAL_ENOUGH:
            mem_nodes = ",".join(k for k, v in where["pages_kb_by_node"].items() if v)
            cpus = ",".join(sorted({str(n) for n in where["vcpu_nodes"] if n is not None}))
            poor.append(f"{label(g)} {where['locality']:.0%} local (memory on node {mem_nodes}, vCPUs on node "
                        f"{cpus})")
            node = cpus.split(",")[0]
            hints.append(_hint(g, f'<numatune><memory mode="strict" nodeset="{node}"/></numatune> and '
                                  f"<vcpupin> to node {node}'s CPUs",
                               f"start it under 'numactl --cpunodebind={node} --membind={node}', or give its memory "
                               f"backend host-nodes={node},policy=bind",
                               f"start it under 'numactl --cpunodebind={node} --membind={node}'"))
    if not poor:
        return Check("guests.numa", PASS, title, f"every guest is at least {LOCAL_ENOUGH:.0%} local")
    return Check("guests.numa", WARN, title, "; ".join(poor), " | ".join(hints))


def check_pinning(facts: Facts, guests) -> Check:
    title = TITLES["guests.pinning"]
    isolated = set(isolated_cpus(facts))
    problems, hints = [], []
    owners: dict[int, list[str]] = {}
    for g in guests:
        for i, t, _ in g.vcpus:
            if len(t.allowed) == 1:
                owners.setdefault(t.allowed[0], []).append(f"{g.name} vCPU {i}")
        if not isolated:
            continue
        floating = [i for i, t, _ in g.vcpus if len(t.allowed) > 1]
        housekeeping = [i for i, t, _ in g.vcpus if set(t.allowed) - isolated]
        emulator = sorted({c for t in g.others for c in t.allowed} & isolated)
        if floating:
            problems.append(f"{label(g)}: vCPUs {_list(floating)} not pinned on a host with isolated CPUs")
        if housekeeping:
            problems.append(f"{label(g)}: vCPUs {_list(housekeeping)} may run on housekeeping CPUs")
        if emulator:
            problems.append(f"{label(g)}: emulator threads may run on isolated CPUs {_list(emulator)}")
        if floating or housekeeping or emulator:
            hints.append(_hint(g, '<cputune> with one <vcpupin vcpu="N" cpuset="C"/> per vCPU on isolated CPUs '
                                  "and <emulatorpin> on housekeeping CPUs",
                               "pin each vCPU thread to its own isolated CPU ('taskset -p -c CPU TID') and the "
                               "other threads to housekeeping CPUs",
                               "pin its vCPU threads to isolated CPUs and the rest to housekeeping CPUs"))
    shared = {cpu: who for cpu, who in owners.items() if len({w.rsplit(' vCPU', 1)[0] for w in who}) > 1}
    for cpu, who in sorted(shared.items()):
        problems.append(f"CPU {cpu} is shared by {', '.join(who)}")
    data = {"isolated": sorted(isolated), "pinned_one_to_one": {str(g.pid): pinned_one_to_one(g) for g in guests}}
    if problems:
        return Check("guests.pinning", WARN, title, "; ".join(problems), " | ".join(hints) or None, data)
    pinned = sum(1 for g in guests if pinned_one_to_one(g))
    detail = (f"{pinned} of {len(guests)} guests pinned one vCPU to one CPU"
              + ("" if isolated else "; no CPUs isolated, vCPUs may float (fine on a general host)"))
    return Check("guests.pinning", PASS if isolated or pinned else INFO, title, detail, None, data)


def _list(items) -> str:
    return ",".join(str(i) for i in items)


def check_ksm(facts: Facts, guests) -> Check:
    title = TITLES["guests.ksm"]
    merged = [(g, (g.ksm or {}).get("merging_pages", 0)) for g in guests]
    merged = [(g, pages) for g, pages in merged if pages]
    if not merged:
        return Check("guests.ksm", PASS, title, "no guest memory is merged")
    latency = "latency" in (facts.known("applied_profiles") or ()) or bool(isolated_cpus(facts))
    page_kb = 4
    detail = "; ".join(f"{label(g)}: {_mib(pages * page_kb)} merged" for g, pages in merged)
    if latency:
        return Check("guests.ksm", WARN, title, detail + " on a host set up for latency",
                     " | ".join(_hint(g, '<memoryBacking><nosharepages/></memoryBacking>',
                                      "-machine mem-merge=off", "do not mark its RAM MADV_MERGEABLE")
                                for g, _ in merged) + " (or stop KSM: ksm.run: 0 in the profile)")
    return Check("guests.ksm", INFO, title, detail)


def check_inspect(hidden) -> Check:
    """A VMM the user may not inspect still runs a guest: its facts are unknown, not fine."""
    detail = "; ".join(f"{name} (pid {pid}): {why}" for pid, name, why in hidden)
    return Check("guests.inspect", WARN, TITLES["guests.inspect"],
                 f"{detail}: RAM backing, NUMA placement, vCPU pinning and KSM of "
                 f"{'this guest' if len(hidden) == 1 else 'these guests'} are unknown",
                 "run 'kvmtune guests' as root (or as the user the VMM runs as)", {"pids": [h[0] for h in hidden]})


def findings(facts: Facts) -> list[Check]:
    """The four findings on the inspected guests (none without one), then guests.inspect if a VMM
    could not be inspected."""
    found = facts.guests
    guests = found.guests
    out = [check_hugepages(facts, guests), check_numa(facts, guests), check_pinning(facts, guests),
           check_ksm(facts, guests)] if guests else []
    return out + ([check_inspect(found.hidden)] if found.hidden else [])


def check_guests(facts: Facts) -> Check:
    """check's one line: how many guests run, and whether any finding wants a look."""
    title = model.TITLES["guests"]
    g = facts.guests
    if not g.processes:
        return Check("guests", INFO, title, "the snapshot holds no process table: guests not judged")
    if not g.guests and not g.hidden:
        return Check("guests", INFO, title, "no running guests")
    unknown = (f"{len(g.hidden)} not inspectable as this user ({', '.join(f'{n} (pid {p})' for p, n, _ in g.hidden)}"
               "): their facts are unknown, run 'kvmtune guests' as root")
    hidden = f"; {unknown}" if g.hidden else ""
    count = len(g.guests) + len(g.hidden)
    count = f"{count} guest{'s' if count != 1 else ''}"
    if not g.guests:
        return Check("guests", INFO, title, f"{count}: {unknown}")
    found = [c for c in findings(facts) if c.id != "guests.inspect"]  # said in `hidden`
    warns = [c for c in found if c.status == WARN]
    names = ", ".join(label(x) for x in g.guests[:5]) + (" ..." if len(g.guests) > 5 else "")
    if warns:
        return Check("guests", WARN, title, f"{count} ({names}): " +
                     "; ".join(c.detail for c in warns) + hidden, "run 'kvmtune guests' for each guest's placement "
                     "and the fix", {"findings": [c.id for c in warns]})
    notes = [c for c in found if c.status == INFO and c.id != "guests.pinning"]  # floating vCPUs: normal
    if notes:
        return Check("guests", INFO, title, f"{count} ({names}): " + "; ".join(c.detail for c in notes) + hidden)
    return Check("guests", PASS if not hidden else INFO, title,
                 f"{count} ({names}): nothing to change in memory backing, locality, placement or KSM"
                 + hidden)
