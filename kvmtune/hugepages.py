"""HugeTLB pools (every page size, global and per node) and hugetlbfs mounts.

/proc/meminfo's HugePages_* lines cover only the default page size (observed:
2 x 1 GiB allocated still read 0 there), so every size is read from its own
/sys/kernel/mm/hugepages/hugepages-<kB>kB directory.
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host import Host
from kvmtune.numa import NumaFacts, pool_size_kb
from kvmtune.probe import parse
from kvmtune.probe.system import Mount, cmdline_values

POOL_DIR = "sys/kernel/mm/hugepages"
_FIELDS = ("nr_hugepages", "free_hugepages", "resv_hugepages", "surplus_hugepages",
           "nr_overcommit_hugepages")


def size_label(size_kb: int) -> str:
    """2048 -> 2M, 1048576 -> 1G."""
    for unit, factor in (("G", 1 << 20), ("M", 1 << 10)):
        if size_kb % factor == 0:
            return f"{size_kb // factor}{unit}"
    return f"{size_kb}K"


@record
class Pool:
    size_kb: int
    total: int | None
    free: int | None
    reserved: int | None
    surplus: int | None
    overcommit: int | None
    nodes: dict[int, dict[str, int | None]]

    def to_json(self) -> dict:
        return {
            "size_kb": self.size_kb,
            "total": self.total,
            "free": self.free,
            "reserved": self.reserved,
            "surplus": self.surplus,
            "overcommit": self.overcommit,
            "nodes": {str(k): v for k, v in sorted(self.nodes.items())},
        }


@record
class HugepageFacts:
    pools: tuple[Pool, ...] = ()
    default_size_kb: int | None = None
    mounts: tuple[Mount, ...] = ()
    boot: dict[str, list[str]] = {}
    problems: tuple[str, ...] = ()

    def pool(self, size_kb: int) -> Pool | None:
        return next((p for p in self.pools if p.size_kb == size_kb), None)

    def mount_size_kb(self, mount: Mount) -> int | None:
        """The page size a hugetlbfs mount serves (pagesize= or the default size)."""
        value = mount.options.get("pagesize")
        return parse_size_kb(value) if value else self.default_size_kb

    def to_json(self) -> dict:
        return {
            "default_size_kb": self.default_size_kb,
            "pools": {str(p.size_kb): p.to_json() for p in self.pools},
            "mounts": [
                {"path": m.target, "pagesize_kb": self.mount_size_kb(m), "options": m.options}
                for m in self.mounts
            ],
            "boot": self.boot,
        }


def parse_size_kb(text: str) -> int | None:
    """``1024M`` / ``1G`` / ``2048k`` / bytes -> kB, as the kernel prints hugetlbfs sizes."""
    text = text.strip()
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    digits = text[:-1] if unit else text
    if not digits.isdigit() or unit not in ("", "K", "M", "G"):
        return None
    value = int(digits)
    return {"": value // 1024, "K": value, "M": value << 10, "G": value << 20}[unit]


def read_hugepages(host: Host, numa: NumaFacts, meminfo: dict[str, int],
                   mounts: list[Mount], cmdline: list[tuple[str, str | None]]) -> HugepageFacts:
    problems: list[str] = []
    pools = []
    for entry in host.listdir(POOL_DIR):
        size = pool_size_kb(entry)
        if size is None:
            continue
        values = []
        for name in _FIELDS:
            rel = f"{POOL_DIR}/{entry}/{name}"
            try:
                text = host.read_optional(rel)
            except HostError as exc:
                problems.append(f"/{rel}: {exc.reason}")
                text = None
            value = parse.int_or_none(text)
            if text is not None and value is None:
                problems.append(f"/{rel}: not a number: {text.strip()[:40]!r}")
            values.append(value)
        nodes = {
            n.id: {"total": p.total, "free": p.free, "surplus": p.surplus}
            for n in numa.nodes if (p := n.hugepages.get(size)) is not None
        }
        pools.append(Pool(size, *values, nodes=nodes))
    pools.sort(key=lambda p: p.size_kb)
    boot = {k: cmdline_values(cmdline, k) for k in ("hugepagesz", "hugepages", "default_hugepagesz")}
    return HugepageFacts(
        pools=tuple(pools),
        default_size_kb=meminfo.get("Hugepagesize"),
        mounts=tuple(m for m in mounts if m.fstype == "hugetlbfs"),
        boot={k: v for k, v in boot.items() if v},
        problems=tuple(problems),
    )


# -- planning -----------------------------------------------------------------

RESERVE_FRACTION = 0.10
RESERVE_MIN_KB = 2 << 20  # 2 GiB: boot and host daemons need it whatever the machine's size
NODE_POOL = "sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/nr_hugepages"


def pool_rel(size_kb: int, node: int | None = None) -> str:
    if node is None:
        return f"{POOL_DIR}/hugepages-{size_kb}kB/nr_hugepages"
    return NODE_POOL.format(node=node, size=size_kb)


def plan_hugepages(profile, host: Host, facts, force: bool = False) -> list:
    """Pool changes: larger page sizes first (they need the most contiguous memory),
    and within a size, per-node pools before a total."""
    from kvmtune.plan import NOW, OK, PENDING, Change

    if not profile.hugepages:
        return []
    hp, numa = facts.hugepages, facts.numa
    mem_kb = facts.meminfo[0].get("MemTotal")
    changes = []
    wanted_kb = {p.size_kb: (p.total or 0) * p.size_kb for p in hp.pools}
    for size in sorted(profile.hugepages, reverse=True):
        req = profile.hugepages[size]
        label = size_label(size)
        if hp.pool(size) is None:
            sizes = ", ".join(size_label(p.size_kb) for p in hp.pools) or "none"
            raise req.src.error(f"this host has no {label} huge page pool (it has: {sizes})")
        per_node = _per_node_pages(req, size, numa, mem_kb)
        targets = [(n, pages) for n, pages in sorted(per_node.items())] if per_node else \
            [(None, req.total.pages(size, mem_kb))]
        for node, pages in targets:
            rel = pool_rel(size, node)
            current = parse.int_or_none(host.read_optional(rel))
            if node is not None and current is None:
                raise req.src.error(f"node {node} has no {label} pool (/{rel} does not exist)")
            where = f" node{node}" if node is not None else ""
            changes.append(Change(f"hugepages {label}{where}", "pool", rel, current, str(pages), NOW,
                                  OK if current == pages else PENDING,
                                  meta={"size_kb": size, "node": node, "boot": req.boot,
                                        "pages": pages}))
        wanted_kb[size] = sum(p for _, p in targets) * size
    _check_reserve(profile, mem_kb, sum(wanted_kb.values()), force)
    return changes


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


def _check_reserve(profile, mem_kb: int | None, hugepage_kb: int, force: bool) -> None:
    if mem_kb is None or force:
        return
    reserve = max(int(mem_kb * RESERVE_FRACTION), RESERVE_MIN_KB)
    left = mem_kb - hugepage_kb
    if left < reserve:
        src = next(iter(profile.hugepages.values())).src
        raise src.error(f"huge pages would take {hugepage_kb >> 20} GiB of {mem_kb >> 20} GiB, leaving "
                        f"{max(left, 0) >> 20} GiB for the host, below the safe reserve of "
                        f"{reserve >> 20} GiB (10% or 2 GiB, whichever is larger); --force to override")


def shortfall(change, host: Host) -> str | None:
    """After a pool write: None if the kernel granted it, else what it granted."""
    got = parse.int_or_none(host.read_optional(change.rel))
    want = change.meta["pages"]
    if got == want:
        return None
    where = f" on node {change.meta['node']}" if change.meta.get("node") is not None else ""
    return f"got {got} of {want} {size_label(change.meta['size_kb'])} pages{where}"
