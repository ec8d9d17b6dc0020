"""HugeTLB pools: plan every page size, global and per node; write them and check the grant.

The kernel grants pool growth best-effort: a write of 1024 may leave 900 (fragmented
memory), so every write is read back and a shortfall is a failure, retried once after
compaction when the profile asks, or left to the boot reservation (``boot: true``). A boot
pool the kernel grants nothing more of now is ``blocked``, not changed: a second apply that
finds the same kernel reports no change (Ansible settles), and says where the pages will
come from (the boot loader kvmtune edited, or the kernel arguments to add by hand).
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe import parse
from kvmtune.probe.hugepages import POOL_DIR, size_label
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, PENDING_REBOOT
from kvmtune.tune.knob import KnobChange, refused
from kvmtune.tune.registry import Field, integer, kind
from kvmtune.tune.sections import section

RESERVE_FRACTION = 0.10
RESERVE_MIN_KB = 2 << 20  # 2 GiB: boot and host daemons need it whatever the machine's size
NODE_POOL = "sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/nr_hugepages"
COMPACT = "proc/sys/vm/compact_memory"


def pool_rel(size_kb: int, node: int | None = None) -> str:
    if node is None:
        return f"{POOL_DIR}/hugepages-{size_kb}kB/nr_hugepages"
    return NODE_POOL.format(node=node, size=size_kb)


@kind
class PoolChange(KnobChange):
    KIND, ORDER = "pool", 20
    FIELDS = (Field("size_kb", integer(4, (1 << 24) + 1), "a page size"),
              Field("node", integer(0, 1 << 16, optional=True), "a node id", none="all"))
    __slots__ = ("size_kb", "node", "boot", "at_boot")

    def __init__(self, size_kb: int, node: int | None, before, after, boot: bool = False,
                 status=None, detail="", at_boot: str | None = None):
        self.size_kb, self.node, self.boot = size_kb, node, boot
        # Where a boot pool's pages come from at boot (None: the boot loader kvmtune edits).
        self.at_boot = at_boot
        super().__init__(before, after, status, detail)

    rel = property(lambda self: pool_rel(self.size_kb, self.node))

    @property
    def target(self) -> str:
        return f"hugepages {size_label(self.size_kb)}" + (f" node{self.node}" if self.node is not None else "")

    @staticmethod
    def rollback_sort(key: str, record: dict):
        # Totals before per-node values: shrinking a total releases pages on every node.
        return record["node"] is not None, record["node"] or 0, record["size_kb"]

    def write(self, host, ctx) -> None:
        host.write(self.rel, str(self.after))
        short = self.shortfall(host)
        if short and getattr(ctx, "compact", False):
            try:
                host.write(COMPACT, "1")  # defragment, then ask once more
            except HostError as exc:
                self.status, self.detail = FAILED, refused(exc)
                return
            host.write(self.rel, str(self.after))
            short = self.shortfall(host)
        if not short:
            self.status = CHANGED
        elif self.boot:
            granted = parse.int_or_none(host.read_optional(self.rel)) != parse.int_or_none(self.before)
            later = self.at_boot or "the boot reservation provides them from the next boot"
            status = (PENDING_REBOOT if self.at_boot is None else CHANGED) if granted else BLOCKED
            self.status, self.detail = status, f"{short}; {later}"
        else:
            self.status, self.detail = FAILED, (f"{short}: memory is too fragmented; compact and retry "
                                                "(hugepages.compact: true) or reserve at boot (boot: true)")

    def shortfall(self, host) -> str | None:
        """After a write: None if the kernel granted it, else what it granted."""
        got = parse.int_or_none(host.read_optional(self.rel))
        if got == int(self.after):
            return None
        where = f" on node {self.node}" if self.node is not None else ""
        return f"got {got} of {self.after} {size_label(self.size_kb)} pages{where}"


def plan_pools(profile, facts, force: bool = False) -> list[PoolChange]:
    """Larger page sizes first (they need the most contiguous memory), and within a size,
    per-node pools before a total."""
    if not profile.hugepages:
        return []
    hp, numa = facts.hugepages, facts.numa
    mem_kb = facts.meminfo.get("MemTotal")
    changes = []
    wanted_kb = {p.size_kb: (p.total or 0) * p.size_kb for p in hp.pools}
    for size in sorted(profile.hugepages, reverse=True):
        req = profile.hugepages[size]
        label = size_label(size)
        pool = hp.pool(size)
        if pool is None:
            sizes = ", ".join(size_label(p.size_kb) for p in hp.pools) or "none"
            where = "this host has" if facts.capture is None else "this snapshot holds"
            raise req.src.error(f"{where} no {label} huge page pool (it has: {sizes})")
        per_node = _per_node_pages(req, size, numa, mem_kb)
        targets = sorted(per_node.items()) if per_node else [(None, req.total.pages(size, mem_kb))]
        at_boot = _at_boot(facts, boot_pool_args(size, targets)) if req.boot else None
        for node, pages in targets:
            if node is None:
                current = pool.total
            else:
                node_pool = numa.node(node).hugepages.get(size)
                current = node_pool.total if node_pool else None
                if current is None:
                    raise req.src.error(f"node {node} has no {label} pool (/{pool_rel(size, node)} does not exist)")
            changes.append(PoolChange(size, node, None if current is None else str(current), str(pages),
                                      req.boot, at_boot=at_boot))
        wanted_kb[size] = sum(p for _, p in targets) * size
    _check_reserve(profile, mem_kb, sum(wanted_kb.values()), force)
    return changes


def boot_pool_args(size_kb: int, targets) -> list[str]:
    """The kernel arguments that reserve a pool at boot (Documentation/admin-guide/mm/hugetlbpage.rst:
    ``hugepages=N``, or per node ``hugepages=0:N,1:M`` since 5.13), from [(node or None, pages)]."""
    size = f"{size_kb >> 20}G" if size_kb % (1 << 20) == 0 else f"{size_kb >> 10}M"
    count = ",".join(f"{node}:{pages}" for node, pages in targets) if targets[0][0] is not None else targets[0][1]
    return [f"hugepagesz={size}", f"hugepages={count}"]


def _at_boot(facts, args: list[str]) -> str | None:
    """What provides a boot pool's pages at boot, when it is not a boot loader kvmtune edits."""
    loader = facts.boot_loader
    if loader is None:  # not read: --no-persist (or a plan made without the files)
        return "--no-persist: nothing reserves them at boot"
    if loader.editable:
        return None
    return f"no boot loader kvmtune can edit: add '{' '.join(args)}' to the kernel command line by hand"


def _per_node_pages(req, size: int, numa, mem_kb) -> dict[int, int]:
    if req.per_node:
        out = {}
        for node_id, amount in req.per_node.items():
            node = numa.node(node_id)
            if node is None:
                have = ", ".join(str(n.id) for n in numa.nodes) or "none"
                raise amount.src.key_error(f"node {node_id} does not exist on this host (nodes: {have})")
            out[node_id] = amount.pages(size, node.mem_total_kb)
        return out
    if req.spread:
        nodes = [n for n in numa.nodes if n.mem_total_kb]
        if not nodes:
            raise req.src.error("spread needs NUMA nodes with memory, and this host shows none")
        if req.total.kind == "percent":  # that share of each node's own memory
            return {n.id: req.total.pages(size, n.mem_total_kb) for n in nodes}
        total = req.total.pages(size, mem_kb)
        base, extra = divmod(total, len(nodes))
        return {n.id: base + (1 if i < extra else 0) for i, n in enumerate(nodes)}
    return {}


def safe_reserve_kb(mem_kb: int) -> int:
    """What the host keeps for itself: 10 % of memory or 2 GiB, whichever is larger."""
    return max(int(mem_kb * RESERVE_FRACTION), RESERVE_MIN_KB)


def _check_reserve(profile, mem_kb: int | None, hugepage_kb: int, force: bool) -> None:
    if mem_kb is None or force:
        return
    reserve = safe_reserve_kb(mem_kb)
    left = mem_kb - hugepage_kb
    if left < reserve:
        src = next(iter(profile.hugepages.values())).src
        raise src.error(f"huge pages would take {hugepage_kb >> 20} GiB of {mem_kb >> 20} GiB, leaving "
                        f"{max(left, 0) >> 20} GiB for the host, below the safe reserve of "
                        f"{reserve >> 20} GiB (10% or 2 GiB, whichever is larger); --force to override")


def _read(host, profile, persist: bool, out: dict) -> None:
    """Pools and mounts: for the profile's pools and mounts, and for the files kept at boot
    (the default page size decides where a pool total persists)."""
    if not (profile.hugepages or profile.hugetlbfs or persist):
        return
    from kvmtune.probe.hugepages import read_hugepages
    from kvmtune.probe.numa import read_numa
    from kvmtune.probe.system import read_meminfo, read_mounts

    out["mounts"] = tuple(read_mounts(host) or ())
    meminfo, _ = read_meminfo(host)
    numa = read_numa(host)  # every node's own counters: the engine reads back what it wrote there
    out["meminfo"], out["numa"] = meminfo, numa
    out["hugepages"] = read_hugepages(host, numa, meminfo, list(out["mounts"]), list(out.get("cmdline", ())))
    if profile.hugepages:
        from kvmtune.probe.buddy import read_fragmentation

        out["fragmentation"] = read_fragmentation(host)


def _plan(profile, facts, ctx) -> list[PoolChange]:
    changes = plan_pools(profile, facts, ctx.force)
    if facts.fragmentation is not None:
        from kvmtune.tune.pool_forecast import shortfall_warnings

        ctx.warnings.extend(shortfall_warnings(changes, facts.fragmentation))
    return changes


section("pools", order=20, reads=_read, plan=_plan)
