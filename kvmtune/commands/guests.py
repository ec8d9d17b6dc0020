"""``kvmtune guests``: the running KVM guests, and whether they use what the host was tuned for."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError

SCHEMA_VERSION = 1
FACTS = ("guests", "hugepages", "numa", "isolation", "applied_profiles", "hostname")


class GuestsOptions(Options):
    def __init__(self, format: str = "text", output: str | None = None, strict: bool = False, root: str = "/"):
        self.format = format
        self.output = output
        self.strict = strict
        self.root = root


def guests_report(root: str) -> dict:
    """Read the guests and the host facts they are judged against; the JSON contract."""
    import os

    from kvmtune.checks.facts import FactUnknown
    from kvmtune.checks.guests import findings, guest_json, isolated_cpus, node_of_cpu
    from kvmtune.checks.read import read_facts
    from kvmtune.host.door import Host

    if not os.path.isdir(root):
        raise UsageError(f"--root: {root} is not a directory")
    facts = read_facts(Host(root), list(FACTS))
    try:
        found = facts.guests
    except FactUnknown as exc:
        from kvmtune.errors import KvmtuneError

        raise KvmtuneError(f"cannot list the guests: {exc}") from None
    numa = facts.known("numa")
    hp = facts.known("hugepages")
    cpu_nodes = node_of_cpu(numa)
    checks = findings(facts)
    return {
        "schema_version": SCHEMA_VERSION,
        "host": {"hostname": facts.known("hostname"), "root": root, "live": facts.live,
                 "processes": found.processes, "nodes": len(numa.nodes) if numa else None,
                 "isolated_cpus": list(isolated_cpus(facts)),
                 "pools": {str(p.size_kb): {"total": p.total, "free": p.free} for p in (hp.pools if hp else ())}},
        "guests": [guest_json(g, cpu_nodes) for g in found.guests],
        "hidden": [{"pid": pid, "name": name, "reason": why} for pid, name, why in found.hidden],
        "findings": [{"id": c.id, "status": c.status, "title": c.title, "detail": c.detail, "hint": c.hint,
                      "data": c.data} for c in checks],
    }


def run_guests(opts: GuestsOptions) -> int:
    import io
    import sys

    from kvmtune.commands.check import write_output

    report = guests_report(opts.root)
    stream = sys.stdout if opts.output is None else io.StringIO()
    if opts.format == "json":
        from kvmtune.render.json_out import write_json

        write_json(report, stream)
    elif opts.format == "prometheus":
        from kvmtune.render.guests_prometheus import render_guests_prometheus

        stream.write(render_guests_prometheus(report))
    else:
        from kvmtune.render.guests_text import render_guests

        render_guests(report, stream)
    if opts.output is not None:
        write_output(opts.output, stream.getvalue())
    if opts.strict and any(f["status"] == "warn" for f in report["findings"]):
        return EXIT_NOT_READY
    return EXIT_OK
