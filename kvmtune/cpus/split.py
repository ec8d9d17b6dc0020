"""The split of a host's CPUs between housekeeping (the host's own work) and isolated CPUs
(pinned guests). Pure: topology in, split out.

Whole cores only: SMT siblings share a core's caches and pipeline, so a core split
between host and guest lets host work disturb the guest (tuned's calc_isolated_cores
takes the first N logical CPUs of a socket and can do exactly that). Every NUMA node
with CPUs keeps housekeeping CPUs, for its interrupts and kernel threads.
"""

from __future__ import annotations

from kvmtune.record import record


class SplitError(ValueError):
    """The asked split is not possible on this topology; the message says why."""


@record
class Split:
    housekeeping: tuple[int, ...]
    isolated: tuple[int, ...]
    nodes: dict  # node -> {"housekeeping": [...], "isolated": [...]}

    def to_json(self) -> dict:
        from kvmtune.probe.parse import format_cpulist

        return {"housekeeping": format_cpulist(list(self.housekeeping)),
                "isolated": format_cpulist(list(self.isolated)),
                "nodes": {str(n): {k: format_cpulist(v) for k, v in parts.items()}
                          for n, parts in sorted(self.nodes.items())}}


def node_cores(cores, node_cpus: dict[int, tuple[int, ...]]) -> dict[int, list[tuple[int, ...]]]:
    """Cores per node (a core belongs to the node of its first CPU); CPUs of no known node
    count as node 0's, as on a host without NUMA."""
    where = {cpu: node for node, cpus in node_cpus.items() for cpu in cpus}
    out: dict[int, list[tuple[int, ...]]] = {}
    for core in cores:
        out.setdefault(where.get(core[0], 0), []).append(core)
    return out


def by_housekeeping(cores, node_cpus: dict[int, tuple[int, ...]], per_node: int) -> Split:
    """Keep the first ``per_node`` whole cores of every node for the host; isolate the rest."""
    if per_node < 1:
        raise SplitError("housekeeping needs at least one core per node")
    housekeeping, isolated = [], []
    for node, of_node in node_cores(cores, node_cpus).items():
        if len(of_node) <= per_node:
            raise SplitError(f"node {node} has {len(of_node)} core(s): keeping {per_node} for the host "
                             "leaves none to isolate")
        for core in of_node[:per_node]:
            housekeeping += core
        for core in of_node[per_node:]:
            isolated += core
    return _split(cores, node_cpus, set(isolated))


def by_isolated(cores, node_cpus: dict[int, tuple[int, ...]], wanted: list[int]) -> Split:
    """The CPUs asked for, checked: known and online, whole cores, housekeeping on every node."""
    online = {c for core in cores for c in core}
    unknown = sorted(set(wanted) - online)
    if unknown:
        raise SplitError(f"CPUs {_list(unknown)} are not online on this host (online: {_list(sorted(online))})")
    chosen = set(wanted)
    split_cores = [core for core in cores if chosen & set(core) and not set(core) <= chosen]
    if split_cores:
        parts = ", ".join(f"{_list([c for c in core if c in chosen])} without {_list([c for c in core if c not in chosen])}"
                          for core in split_cores[:4])
        raise SplitError(f"this splits SMT cores between host and guests ({parts}); isolate whole cores")
    return _split(cores, node_cpus, chosen)


def _split(cores, node_cpus, isolated: set[int]) -> Split:
    nodes: dict[int, dict[str, list[int]]] = {}
    for node, of_node in node_cores(cores, node_cpus).items():
        cpus = [c for core in of_node for c in core]
        keep = sorted(c for c in cpus if c not in isolated)
        if not keep:
            raise SplitError(f"node {node} would have no housekeeping CPU (its CPUs {_list(sorted(cpus))} "
                             "would all be isolated): interrupts and kernel threads need one on every node")
        nodes[node] = {"housekeeping": keep, "isolated": sorted(c for c in cpus if c in isolated)}
    housekeeping = tuple(sorted(c for parts in nodes.values() for c in parts["housekeeping"]))
    return Split(housekeeping, tuple(sorted(isolated)), nodes)


def _list(cpus: list[int]) -> str:
    from kvmtune.probe.parse import format_cpulist

    return format_cpulist(cpus)


def kernel_args(split: Split, managed_irq: bool = True, nohz_full: bool = True, rcu_nocbs: bool = True,
                irqaffinity: bool = True) -> list[str]:
    """The boot arguments tuned's realtime-virtual-host sets for this split."""
    iso, hk = _list(list(split.isolated)), _list(list(split.housekeeping))
    args = [f"isolcpus={'managed_irq,' if managed_irq else ''}domain,{iso}"]
    if nohz_full:
        args += ["nohz=on", f"nohz_full={iso}"]
    if rcu_nocbs:
        args.append(f"rcu_nocbs={iso}")
    if irqaffinity:
        args.append(f"irqaffinity={hk}")
    return args
