"""Judge facts into findings: the checks in report order, the facts each needs, the verdict.

Three phases, as lscpu has them: read_phase reads (kvmtune.checks.read), run_checks
judges with pure functions of facts, the renderers format. Nothing after read_phase
touches the Host.
"""

from __future__ import annotations

from kvmtune.checks.facts import FactUnknown, Facts
from kvmtune.checks.intents import GENERAL, ON_DEMAND, added_checks, judge_intents
from kvmtune.checks.model import FAIL, PASS, STATUSES, TITLES, UNKNOWN, WARN, Check, matches
from kvmtune.errors import UsageError

SCHEMA_VERSION = 1

# Stable ids, in report order: (module, function, extra argument, facts it judges).
# Areas are the part before the first dot.
REGISTRY = {
    "cpu.virt": ("cpu", "check_cpu_virt", None,
                 ("cpu", "modules", "dev_kvm", "kvm", "virt_refusals", "cpuid")),
    "cpu.vulnerabilities": ("cpu", "check_cpu_vulnerabilities", None, ("vulns", "cmdline")),
    "cpu.isolation": ("isolation", "check_isolation", None,
                      ("isolation", "isolated_cores", "numa", "cmdline", "hugepages", "ksm", "power")),
    "cpu.power": ("isolation", "check_power", None, ("power", "isolation")),
    "kvm.device": ("kvm", "check_device", None, ("dev_kvm", "modules", "cpu")),
    "kvm.access": ("kvm", "check_access", None, ("dev_kvm", "access", "accounts")),
    "kvm.functional": ("kvm", "check_functional", None, ("dev_kvm", "kvm", "cpu")),
    "kvm.modules": ("kvm", "check_modules", None, ("modules", "cmdline", "cpu")),
    "devices.vhost_net": ("devices", "check_device_node", "devices.vhost_net", ("dev_vhost_net",)),
    "devices.tun": ("devices", "check_device_node", "devices.tun", ("dev_tun",)),
    "devices.vfio": ("pci", "check_vfio", None, ("dev_vfio", "vfio")),
    "cgroups": ("platform", "check_cgroups", None, ("cgroups",)),
    "iommu": ("platform", "check_iommu", None, ("iommu", "cpu", "boot_loader")),
    "iommu.groups": ("pci", "check_iommu_groups", None, ("pci", "host_needs", "boot_loader")),
    "pci.acs": ("pci", "check_pci_acs", None, ("pci",)),
    "sriov": ("pci", "check_sriov", None, ("pci", "sriov_persist")),
    "secure_guest": ("platform", "check_secure_guest", None, ("cpu", "modules", "dev_sev", "boot_loader")),
    "numa": ("memory", "check_numa", None, ("numa",)),
    "memory.hugepages": ("memory", "check_hugepages", None, ("hugepages",)),
    "memory.thp": ("memory", "check_thp", None, ("thp",)),
    "memory.swap": ("memory_vm", "check_swap", None, ("meminfo", "vm")),
    "memory.zswap": ("memory_vm", "check_zswap", None, ("meminfo", "vm")),
    "memory.overcommit": ("memory_vm", "check_overcommit", None, ("meminfo", "vm", "guests", "ksm")),
    "memory.fragmentation": ("memory_vm", "check_fragmentation", None, ("fragmentation", "hugepage_pools")),
    "ksm": ("memory", "check_ksm", None, ("ksm", "node_ids", "ksm_policy")),
    "kernel.cmdline": ("isolation", "check_cmdline", None, ("boot_args", "cmdline")),
    "guests": ("guests", "check_guests", None, ("guests", "hugepages", "numa", "isolation", "applied_profiles")),
    # On demand (kvmtune.checks.intents): only under an intent that adds them, or --only.
    "memlock": ("memlock", "check_memlock", None, ("memlock", "guests", "guest_limits")),
    "clock": ("clock", "check_clock", None, ("clock",)),
    "clock.tsc": ("clock", "check_clock_tsc", None, ("clock", "kvm", "modules", "cmdline", "packages")),
}
CHECK_IDS = (*REGISTRY, "ready")
# Readiness needs positive evidence of KVM: if these cannot be decided, the host is not ready.
ESSENTIAL = ("kvm.device", "kvm.functional")
AREAS = tuple(dict.fromkeys(i.split(".", 1)[0] for i in CHECK_IDS))
# What the JSON host object shows of a full run, beyond what the checks judge.
HOST_FACTS = ("cpu", "numa", "meminfo", "hugepages", "thp", "ksm", "modules", "dev_kvm", "isolation", "power",
              "qemu", "clock", "kernel")


class Report:
    """The checks that ran, the verdict, and the facts they were judged on."""

    def __init__(self, checks: list[Check], ready: bool, facts: Facts, strict: bool,
                 summary: dict[str, int], intents: tuple[str, ...] = (GENERAL,),
                 ready_for: tuple[str, ...] = (), judged: bool = True):
        self.checks = checks
        self.ready = ready
        self.judged = judged  # False: the checks that decide readiness were left out
        self.facts = facts
        self.strict = strict
        self.summary = summary
        self.intents = intents  # what the host was judged for, general first
        self.ready_for = ready_for  # those of them it is ready for


def validate_selectors(selectors: list[str], option: str) -> None:
    known = set(CHECK_IDS) | set(AREAS)
    bad = [s for s in selectors if s not in known]
    if bad:
        import difflib

        close = [c for s in bad for c in difflib.get_close_matches(s, sorted(known), n=1)]
        hint = (f"did you mean {', '.join(map(repr, close))}?" if len(close) == len(bad)
                else f"known: {', '.join(CHECK_IDS)}")
        raise UsageError(f"{option}: unknown check or area {', '.join(map(repr, bad))}; {hint}")


def selected(only: list[str], skip: list[str], intents: tuple[str, ...] = (GENERAL,)) -> list[str]:
    """The checks to run: plain check's, those the intents add, and on-demand ones --only names."""
    validate_selectors(only, "--only")
    validate_selectors(skip, "--skip")
    added = added_checks(intents)
    return [c for c in REGISTRY
            if (c not in ON_DEMAND or c in added or (only and matches(c, only)))
            and (not only or matches(c, only)) and not matches(c, skip)]


def read_phase(host, only: list[str], skip: list[str], as_user: str | None = None,
               host_json: bool = False, intents: tuple[str, ...] = (GENERAL,)) -> Facts:
    """Read the facts the selected checks need (and, for a JSON report of a whole run, what
    its host object shows, with what KVM offers guests)."""
    from kvmtune.checks.read import read_facts

    names = [n for c in selected(only, skip, intents) for n in REGISTRY[c][3]]
    if only and matches("memory.fragmentation", only):  # the kernel walks every pageblock: only when asked
        names.append("pagetypeinfo")
    if host_json and not only:
        names += [*HOST_FACTS, "kvm_features"]
    return read_facts(host, list(dict.fromkeys(names)), as_user)


def run_checks(facts: Facts, only: list[str] | None = None, skip: list[str] | None = None,
               strict: bool = False, intents: tuple[str, ...] = (GENERAL,)) -> Report:
    """Judge: a pure function of the facts."""
    results = [_run_one(check_id, facts) for check_id in selected(only or [], skip or [], intents)]
    blocking = {FAIL, WARN, UNKNOWN} if strict else {FAIL}
    blocked, ready_for = judge_intents(
        results, intents, lambda c: c.status in blocking or (c.id in ESSENTIAL and c.status == UNKNOWN))
    # --only/--skip that leave out what decides readiness leave it undecided: never READY.
    ran = {c.id for c in results}
    unjudged = [c for c in ESSENTIAL if c not in ran and (facts.live or c == "kvm.device")]
    if unjudged:
        ready_for = ()
    ready = not blocked and not unjudged
    summary = {s: 0 for s in STATUSES}
    for c in results:
        summary[c.status] += 1
    if not matches("ready", skip or []):  # the verdict over whatever ran; not counted as a check
        n = len(results)
        for_text = "" if intents == (GENERAL,) else f" for {', '.join(intents)}"
        if ready:
            verdict = Check("ready", PASS, TITLES["ready"],
                            f"{n} check{'s' if n != 1 else ''}, none blocking{for_text}" + (" (strict)" if strict else ""))
        elif not blocked:
            verdict = Check("ready", UNKNOWN, TITLES["ready"],
                            f"not judged: {' and '.join(unjudged)} did not run (--only/--skip), and "
                            f"readiness needs {'them' if len(unjudged) > 1 else 'it'}", None, {"not_judged": unjudged})
        else:
            short = "" if not ready_for else f"; ready for {', '.join(ready_for)} only"
            verdict = Check("ready", FAIL, TITLES["ready"],
                            "not ready: " + ", ".join(f"{c.id} {c.status}" for c in blocked) + short,
                            None, {"blocking": [c.id for c in blocked]})
        results.append(verdict)
    return Report(results, ready, facts, strict, summary, intents, ready_for, judged=not unjudged)


def _run_one(check_id: str, facts: Facts) -> Check:
    module, function, argument, needs = REGISTRY[check_id]
    # __import__, not importlib.import_module: importlib's package imports warnings (0.7 ms).
    fn = getattr(__import__(f"kvmtune.checks.{module}", fromlist=[function]), function)
    view = facts.only(needs)
    try:
        return fn(view, argument) if argument else fn(view)
    except FactUnknown as exc:  # a fact it needs could not be read: say which and why
        return Check(check_id, UNKNOWN, TITLES[check_id], f"could not read {exc.name}: {exc.reason}",
                     None, {"unknown": {exc.name: exc.reason}})
