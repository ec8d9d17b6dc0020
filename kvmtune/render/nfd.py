"""check as Node Feature Discovery labels: the feature file NFD's ``local`` source reads.

Write it with ``-o /etc/kubernetes/node-feature-discovery/features.d/kvmtune``: the file is
replaced atomically, so nfd-worker never reads half of it. The format (NFD's customization
guide, "Local feature source", "Input format"): one ``<namespace>/<name>=<value>`` per line,
``#`` lines are comments, a file over 64 kB is ignored. nfd-master validates each label as
a Kubernetes label: the name part at most 63 characters of ``[A-Za-z0-9._-]``, beginning and
ending with a letter or digit; the value the same, or empty. A value that would break the
grammar is left out (with the label), never written: NFD would drop it, or the whole file.

The labels are fixed (README, "Node Feature Discovery labels"); a label whose fact is not
known on this host is left out, not written as "unknown".
"""

from __future__ import annotations

from kvmtune.checks import Report

PREFIX = "kvmtune.io/"
MAX = 63
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_INNER = _ALNUM | frozenset("-_.")


def valid_part(text: str, empty_ok: bool = False) -> bool:
    """A Kubernetes label name part or value: ``(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?``,
    at most 63 characters (k8s.io/apimachinery validation: IsQualifiedName, IsValidLabelValue)."""
    if not text:
        return empty_ok
    return (len(text) <= MAX and text[0] in _ALNUM and text[-1] in _ALNUM
            and all(c in _INNER for c in text))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def nfd_labels(report: Report) -> dict[str, str]:
    """The fixed labels and their values, for what this run could tell."""
    from kvmtune.checks.clock import migration_facts
    from kvmtune.checks.intents import GENERAL, INTENTS

    facts = report.facts
    checks = {c.id: c for c in report.checks}
    labels = {"ready": _bool(GENERAL in report.ready_for)}
    for name in INTENTS:
        if name != GENERAL and name in report.intents:
            labels[f"ready-{name}"] = _bool(name in report.ready_for)
    functional = checks.get("kvm.functional")
    if functional is not None and functional.status in ("pass", "fail"):
        labels["kvm-functional"] = _bool(functional.status == "pass")
    model = best_model(facts)
    if model:
        labels["cpu-model"] = model
    khz = migration_facts(facts.known)["tsc_khz"]
    if khz:
        labels["tsc-khz"] = str(khz)
    hugepages = facts.known("hugepages")
    if hugepages is not None:
        free = {p.size_kb: p.free for p in hugepages.pools}
        for size_kb, name in ((2048, "2M"), (1048576, "1G")):
            labels[f"hugepages-{name}-free"] = str(free.get(size_kb) or 0)
    isolation = facts.known("isolation")
    if isolation is not None:
        labels["isolated-cpus"] = str(len(isolation.all_isolated))
    return {PREFIX + k: v for k, v in labels.items() if valid_part(k) and valid_part(v, empty_ok=True)}


def best_model(facts) -> str | None:
    """The model ``kvmtune cpu-models`` recommends: decided by what KVM offers where this run
    asked it (host.cpu.kvm_features), else by cpuinfo; one this host's QEMU can start."""
    cpu = facts.known("cpu")
    if cpu is None or cpu.arch != "x86_64" or not cpu.flags:
        return None
    from kvmtune.cpumodels.qemu import from_version, startable
    from kvmtune.cpumodels.verdict import CpuinfoSource, KvmSource, best_per_vendor, evaluate, host_pick

    kvm = facts.known("kvm")
    source = (KvmSource(kvm.features) if kvm is not None and kvm.features is not None
              else CpuinfoSource(cpu.flags, cpu.bugs))
    install = facts.known("qemu")
    qemu = from_version(install.installed if install else None, install.series if install else None)
    return host_pick(best_per_vendor(evaluate(source), lambda name: startable(qemu, name)), cpu.vendor)


def render_nfd(report: Report) -> str:
    lines = ["# kvmtune check --format nfd: Node Feature Discovery local source "
             "(/etc/kubernetes/node-feature-discovery/features.d/)"]
    lines += [f"{name}={value}" for name, value in nfd_labels(report).items()]
    return "\n".join(lines) + "\n"
