"""``kvmtune partition``: this host's split between housekeeping and pinned-guest CPUs, and the
matching settings for the guest side (nova.conf, libvirt)."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_OK, UsageError
from kvmtune.grammar import digits


class PartitionOptions(Options):
    def __init__(self, housekeeping_per_node: str | None = None, isolated: str | None = None, json: bool = False,
                 root: str = "/"):
        self.housekeeping_per_node = housekeeping_per_node
        self.isolated = isolated
        self.json = json
        self.root = root


def partition(root: str, per_node: int = 1, isolated: list[int] | None = None) -> dict:
    import os

    from kvmtune.checks.read import read_facts
    from kvmtune.cpus.split import SplitError, by_housekeeping, by_isolated, kernel_args
    from kvmtune.host.door import Host

    if not os.path.isdir(root):
        raise UsageError(f"--root: {root} is not a directory")
    facts = read_facts(Host(root), ["cpu", "numa", "cores", "hugepages"])
    cores, numa = facts.known("cores"), facts.known("numa")
    if not cores:
        raise UsageError(f"cannot tell this host's CPUs: {facts.reason('cores') or facts.reason('cpu')}")
    node_cpus = {n.id: n.cpus for n in (numa.nodes if numa else ()) if n.cpus}
    try:
        split = by_isolated(cores, node_cpus, isolated) if isolated is not None else \
            by_housekeeping(cores, node_cpus, per_node)
    except SplitError as exc:
        raise UsageError(str(exc)) from None
    out = split.to_json()
    out["smt"] = any(len(core) > 1 for core in cores)
    out["kernel_args"] = kernel_args(split)
    out["nova"] = {"cpu_dedicated_set": out["isolated"], "cpu_shared_set": out["housekeeping"],
                   "reserved_huge_pages": _reserved(facts.known("hugepages"), numa)}
    out["libvirt_cputune"] = _cputune(split)
    return out


def _reserved(hugepages, numa) -> list[str]:
    """nova's reserved_huge_pages: per node and size with a pool, what the host keeps for itself (0:
    raise it for host users of huge pages, such as OVS-DPDK)."""
    sizes = [p.size_kb for p in (hugepages.pools if hugepages else ()) if (p.total or 0) > 0]
    nodes = [n.id for n in (numa.nodes if numa else ())] or [0]
    return [f"node:{n},size:{s}KB,count:0" for n in nodes for s in sizes]


def _cputune(split) -> str:
    from kvmtune.probe.parse import format_cpulist

    lines = ["<cputune>"]
    for vcpu, cpu in enumerate(split.isolated[:4]):
        lines.append(f'  <vcpupin vcpu="{vcpu}" cpuset="{cpu}"/>')
    if len(split.isolated) > 4:
        lines.append("  <!-- one vcpupin per vCPU, each on its own isolated CPU -->")
    lines.append(f'  <emulatorpin cpuset="{format_cpulist(list(split.housekeeping))}"/>')
    lines.append("</cputune>")
    return "\n".join(lines)


def run_partition(opts: PartitionOptions) -> int:
    from kvmtune.probe import parse

    per_node = 1
    if opts.housekeeping_per_node is not None:
        if not digits(opts.housekeeping_per_node) or not 1 <= int(opts.housekeeping_per_node) <= 64:
            raise UsageError("--housekeeping-per-node: expected a number of cores from 1 to 64, got "
                             f"{opts.housekeeping_per_node[:40]!r}")
        per_node = int(opts.housekeeping_per_node)
    isolated = None
    if opts.isolated is not None:
        try:
            isolated = parse.cpulist(opts.isolated)
        except ValueError:
            isolated = None
        if not isolated:
            raise UsageError(f"--isolated: expected a CPU list like 2-15,18-31, got {opts.isolated[:40]!r}")
    out = partition(opts.root, per_node, isolated)
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(out)
        return EXIT_OK
    w = print
    w(f"housekeeping (the host): {out['housekeeping']}")
    w(f"isolated (pinned guests): {out['isolated']}")
    for node, parts in out["nodes"].items():
        w(f"  node {node}: housekeeping {parts['housekeeping']}, isolated {parts['isolated'] or '-'}")
    w("whole cores only" + (" (SMT siblings stay together)" if out["smt"] else " (no SMT here)"))
    w("")
    w("kernel command line: " + " ".join(out["kernel_args"]))
    w("")
    w("nova.conf:")
    w("  [compute]")
    w(f"  cpu_dedicated_set = {out['nova']['cpu_dedicated_set']}")
    w(f"  cpu_shared_set = {out['nova']['cpu_shared_set']}")
    w("  [DEFAULT]")
    w(f"  reserved_huge_pages = {', '.join(out['nova']['reserved_huge_pages']) or '(no huge page pools)'}")
    w("")
    w("libvirt domain XML:")
    for line in out["libvirt_cputune"].splitlines():
        w("  " + line)
    return EXIT_OK
