"""Machine output: exactly one JSON object on stdout, made from facts and findings only."""

from __future__ import annotations

import sys

MEMINFO_KEYS = ("MemTotal", "MemFree", "MemAvailable", "Hugetlb", "HugePages_Total",
                "HugePages_Free", "Hugepagesize", "AnonHugePages")


def write_json(obj: dict, stream=None) -> None:
    """Indented for a person at a terminal; compact otherwise, where json's C encoder
    runs (indent= forces the pure-Python one, 5x slower on a 1024-CPU host)."""
    from kvmtune.fastjson import dumps

    stream = stream or sys.stdout
    pretty = hasattr(stream, "isatty") and stream.isatty()
    stream.write(dumps(obj, indent=2 if pretty else None) + "\n")


def report_json(report) -> dict:
    """``check --json``: schema_version 1."""
    from kvmtune.checks import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "host": host_json(report.facts),
        "checks": [c.to_json() for c in report.checks],
        "summary": report.summary,
        "ready": report.ready,
        "judged": report.judged,
        "strict": report.strict,
        "intents": list(report.intents),
        "ready_for": list(report.ready_for),
    }


def host_json(facts) -> dict:
    """The ``host`` object: a section for each fact the run read; what could not be read is
    named under ``unknown`` with the reason. A whole run (no --only) has every section."""
    known = facts.known
    out: dict = {"hostname": known("hostname"), "root": facts.root, "live": facts.live}
    cpu = known("cpu")
    if cpu is not None:
        out["cpu"] = cpu.to_json()
        kvm = known("kvm")
        if kvm is not None and kvm.features is not None:
            out["cpu"]["kvm_features"] = list(kvm.features)  # so fleet results judge CPU models by KVM
        for name in ("isolation", "power"):
            if known(name) is not None:
                out["cpu"][name] = known(name).to_json()
    if known("numa") is not None:
        out["numa"] = known("numa").to_json()
    memory: dict = {}
    if known("meminfo") is not None:
        values, problem = known("meminfo")
        memory.update({k: values.get(k) for k in MEMINFO_KEYS}, problem=problem)
    if known("hugepages") is not None:
        memory["hugepages"] = known("hugepages").to_json()
    if known("thp") is not None:
        memory["thp"] = known("thp").to_json()
    if memory:
        out["memory"] = memory
    if known("ksm") is not None:
        out["ksm"] = known("ksm").to_json()
    kvm_section = {}
    if known("modules") is not None:
        kvm_section["modules"] = known("modules").to_json()
    if known("dev_kvm") is not None:
        kvm_section["device"] = known("dev_kvm").to_json()
    if kvm_section:
        out["kvm"] = kvm_section
    if known("qemu") is not None:
        out["qemu"] = known("qemu").to_json()  # which QEMU: fleet CPU baselines need its models
    if known("clock") is not None:
        from kvmtune.checks.clock import migration_facts
        out["migration"] = migration_facts(known)  # fixed keys: kvmtune migration and fleets read them
    unknown = facts.unknowns()
    for name in ("cpu", "numa"):
        if known(name) is not None:
            unknown.update(known(name).unknowns())
    if unknown:
        out["unknown"] = unknown
    return out
