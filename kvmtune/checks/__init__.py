"""Turn facts into findings: the ordered list of checks and the overall verdict."""

from __future__ import annotations

from functools import partial

from kvmtune.checks import cpu, devices, kvm, memory, platform
from kvmtune.checks.facts import Facts
from kvmtune.checks.model import FAIL, PASS, STATUSES, UNKNOWN, WARN, Check, matches
from kvmtune.errors import HostError, UsageError
from kvmtune.probe.parse import ParseError

SCHEMA_VERSION = 1

# Stable ids, in report order. Areas are the part before the first dot.
REGISTRY = {
    "cpu.virt": cpu.check_cpu_virt,
    "cpu.vulnerabilities": cpu.check_cpu_vulnerabilities,
    "kvm.device": kvm.check_device,
    "kvm.access": kvm.check_access,
    "kvm.functional": kvm.check_functional,
    "kvm.modules": kvm.check_modules,
    "devices.vhost_net": partial(devices.check_device_node, check_id="devices.vhost_net"),
    "devices.tun": partial(devices.check_device_node, check_id="devices.tun"),
    "devices.vfio": partial(devices.check_device_node, check_id="devices.vfio"),
    "cgroups": platform.check_cgroups,
    "iommu": platform.check_iommu,
    "secure_guest": platform.check_secure_guest,
    "numa": memory.check_numa,
    "memory.hugepages": memory.check_hugepages,
    "memory.thp": memory.check_thp,
    "ksm": memory.check_ksm,
}
CHECK_IDS = (*REGISTRY, "ready")
# Readiness needs positive evidence of KVM: if these cannot be decided, the host is not ready.
ESSENTIAL = ("kvm.device", "kvm.functional")
AREAS = tuple(dict.fromkeys(i.split(".", 1)[0] for i in CHECK_IDS))


class Report:
    """The checks that ran, the verdict, and the facts they were judged on."""

    def __init__(self, checks: list[Check], ready: bool, facts: Facts, strict: bool,
                 summary: dict[str, int]):
        self.checks = checks
        self.ready = ready
        self.facts = facts
        self.strict = strict
        self.summary = summary

    def to_json(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "host": self.facts.to_json(),
            "checks": [c.to_json() for c in self.checks],
            "summary": self.summary,
            "ready": self.ready,
            "strict": self.strict,
        }


def validate_selectors(selectors: list[str], option: str) -> None:
    known = set(CHECK_IDS) | set(AREAS)
    bad = [s for s in selectors if s not in known]
    if bad:
        raise UsageError(f"{option}: unknown check or area {', '.join(map(repr, bad))}; "
                         f"known: {', '.join(CHECK_IDS)}")


def run_checks(facts: Facts, only: list[str] | None = None, skip: list[str] | None = None,
               strict: bool = False) -> Report:
    only, skip = only or [], skip or []
    validate_selectors(only, "--only")
    validate_selectors(skip, "--skip")
    results = []
    for check_id, fn in REGISTRY.items():
        if (only and not matches(check_id, only)) or matches(check_id, skip):
            continue
        results.append(_run_one(check_id, fn, facts))
    blocking = {FAIL, WARN, UNKNOWN} if strict else {FAIL}
    blocked = [c for c in results
               if c.status in blocking or (c.id in ESSENTIAL and c.status == UNKNOWN)]
    blockers = [c.id for c in blocked]
    ready = not blockers
    if not matches("ready", skip):  # the verdict over whatever ran
        if ready:
            verdict = Check("ready", PASS, "Ready to run KVM guests",
                            f"{len(results)} checks, none blocking" + (" (strict)" if strict else ""))
        else:
            verdict = Check("ready", FAIL, "Ready to run KVM guests",
                            "not ready: " + ", ".join(f"{c.id} {c.status}" for c in blocked),
                            None, {"blocking": blockers})
        results.append(verdict)
    summary = {s: 0 for s in STATUSES}
    for c in results:
        summary[c.status] += 1
    return Report(results, ready, facts, strict, summary)


def _run_one(check_id: str, fn, facts: Facts) -> Check:
    try:
        return fn(facts)
    except (HostError, ParseError) as exc:
        # A source that vanished or refused mid-read: say so rather than crash.
        return Check(check_id, UNKNOWN, check_id, f"could not read: {exc}")
