"""NUMA topology from /sys/devices/system/node: nodes, CPUs, memory, distances.

numactl is not needed: everything it prints is in sysfs. Node ids can be
sparse (a dump with nodes 0, 2, 3) and a node's ``distance`` row is ordered by
the possible node ids, which is not always the online list.
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe import parse
from kvmtune.grammar import digits, number

NODE_DIR = "sys/devices/system/node"


@record
class NodePool:
    total: int | None
    free: int | None
    surplus: int | None


@record
class Node:
    id: int
    cpus: tuple[int, ...]  # online CPUs of the node
    mem_total_kb: int | None
    mem_free_kb: int | None
    distances: dict[int, int]
    hugepages: dict[int, NodePool]  # by page size in kB

    def to_json(self) -> dict:
        return {
            "cpus": list(self.cpus),
            "mem_total_kb": self.mem_total_kb,
            "mem_free_kb": self.mem_free_kb,
            "hugepages": {
                str(size): {"total": p.total, "free": p.free, "surplus": p.surplus}
                for size, p in sorted(self.hugepages.items())
            },
        }


@record
class NumaFacts:
    nodes: tuple[Node, ...] = ()
    balancing: int | None = None  # kernel.numa_balancing
    problems: tuple[str, ...] = ()

    def unknowns(self) -> dict[str, str]:
        """Each problem by the file it names: a node listed without CPUs because its list
        could not be read must not pass for a CPU-less node."""
        return dict(p.partition(": ")[::2] for p in self.problems)

    def node(self, node_id: int) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def to_json(self) -> dict:
        return {
            "nodes": {str(n.id): n.to_json() for n in self.nodes},
            "distances": {
                str(n.id): {str(k): v for k, v in sorted(n.distances.items())} for n in self.nodes
            },
            "balancing": self.balancing,
        }


def read_numa(host: Host, online_cpus: tuple[int, ...] | None = None,
              empty_sizes: frozenset[int] = frozenset()) -> NumaFacts:
    """The online nodes; a huge page size in ``empty_sizes`` has no page anywhere, so its
    per-node counters are known to be 0 without reading them (16 nodes: 96 reads fewer)."""
    problems: list[str] = []
    ids = _node_ids(host, "online", problems)
    possible = _node_ids(host, "possible", problems)
    online = set(online_cpus) if online_cpus else None
    nodes = []
    for node_id in ids:
        base = f"{NODE_DIR}/node{node_id}"
        cpus = _node_cpus(host, base, problems)
        if online is not None:
            cpus = [c for c in cpus if c in online]
        meminfo = _read_kv(host, f"{base}/meminfo", problems)
        nodes.append(Node(
            id=node_id,
            cpus=tuple(cpus),
            mem_total_kb=meminfo.get("MemTotal"),
            mem_free_kb=meminfo.get("MemFree"),
            distances=_distances(host, base, ids, possible, problems),
            hugepages=_node_pools(host, base, empty_sizes),
        ))
    balancing = None
    try:
        balancing = parse.int_or_none(host.read_optional("proc/sys/kernel/numa_balancing"))
    except HostError as exc:
        problems.append(f"/proc/sys/kernel/numa_balancing: {exc.reason}")
    return NumaFacts(tuple(nodes), balancing, tuple(problems))


def read_node_ids(host: Host) -> tuple[int, ...]:
    """The online node ids alone (ksm judges merging across nodes by how many there are)."""
    return tuple(_node_ids(host, "online", []))


def _node_ids(host: Host, which: str, problems: list[str]) -> list[int]:
    try:
        text = host.read_optional(f"{NODE_DIR}/{which}")
        if text is not None and text.strip():
            return parse.cpulist(text, parse.MAX_NODES)
    except (HostError, parse.ParseError) as exc:
        problems.append(f"/{NODE_DIR}/{which}: {exc}")
    found = [int(e[4:]) for e in host.listdir(NODE_DIR)
             if e.startswith("node") and digits(e[4:]) and int(e[4:]) < parse.MAX_NODES]
    return sorted(found)


def _node_cpus(host: Host, base: str, problems: list[str]) -> list[int]:
    name = "cpulist"
    try:
        text = host.read_optional(f"{base}/cpulist")
        if text is not None:
            return parse.cpulist(text)
        # Old kernels (and some dumps) have only the hex mask.
        name = "cpumap"
        text = host.read_optional(f"{base}/cpumap")
        if text is not None:
            return parse.cpumask(text)
    except (HostError, parse.ParseError) as exc:
        problems.append(f"/{base}/{name}: {exc}")
    return []


def _read_kv(host: Host, rel: str, problems: list[str]) -> dict[str, int]:
    try:
        return parse.kv_kb(host.read_optional(rel) or "")
    except HostError as exc:
        problems.append(f"/{rel}: {exc.reason}")
        return {}


def _distances(host: Host, base: str, ids: list[int], possible: list[int],
               problems: list[str]) -> dict[int, int]:
    try:
        text = host.read_optional(f"{base}/distance")
    except HostError as exc:
        problems.append(f"/{base}/distance: {exc.reason}")
        return {}
    if text is None:
        return {}
    row = [number(v) for v in text.split()]
    if None in row:
        problems.append(f"/{base}/distance: not a list of numbers")
        return {}
    for order in (ids, possible, list(range(len(row)))):
        if len(order) == len(row):
            return dict(zip(order, row))
    problems.append(f"/{base}/distance: {len(row)} entries for {len(ids)} nodes")
    return {}


def _node_pools(host: Host, base: str, empty_sizes: frozenset[int]) -> dict[int, NodePool]:
    pools = {}
    for entry in host.listdir(f"{base}/hugepages"):
        size = pool_size_kb(entry)
        if size is None:
            continue
        if size in empty_sizes:
            pools[size] = NodePool(0, 0, 0)
            continue
        d = f"{base}/hugepages/{entry}"
        pools[size] = NodePool(*(_int(host, f"{d}/{f}_hugepages") for f in ("nr", "free", "surplus")))
    return pools


def pool_size_kb(entry: str) -> int | None:
    """``hugepages-2048kB`` -> 2048; anything else -> None."""
    if entry.startswith("hugepages-") and entry.endswith("kB") and digits(entry[10:-2]):
        return int(entry[10:-2])
    return None


def _int(host: Host, rel: str) -> int | None:
    try:
        return parse.int_or_none(host.read_optional(rel))
    except HostError:
        return None
