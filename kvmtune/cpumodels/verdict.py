"""Which named models a feature source can run, the best of each vendor, and what is missing.

A source is what decides each feature: KVM's answers (live hosts, or a result
that carries host.cpu.kvm_features) or /proc/cpuinfo's flags and bugs lines
(snapshots and older results). A feature the source cannot decide is never
counted as present: a model needing it is "undecided", unless the caller
assumes otherwise.
"""

from __future__ import annotations

from kvmtune.cpumodels import table
from kvmtune.record import record
from kvmtune.grammar import digits

USABLE, NOT_USABLE, UNDECIDED = "usable", "not-usable", "undecided"


class KvmSource:
    """Features decided by what KVM offers (CPUID bits and feature MSRs)."""

    kind = "kvm"

    def __init__(self, present):
        self.present = frozenset(present)

    def decide(self, name: str) -> bool | None:
        feature = table.features().get(name)
        if feature is None:
            return None
        if feature["judge"] == "kvm":
            return True
        return name in self.present


class CpuinfoSource:
    """Features decided from /proc/cpuinfo: flags (any listed alternative) and bugs."""

    kind = "cpuinfo"

    def __init__(self, flags, bugs):
        self.flags = frozenset(flags)
        self.bugs = None if bugs is None else frozenset(bugs)

    def decide(self, name: str) -> bool | None:
        feature = table.features().get(name)
        judge = feature["judge"] if feature else "undecidable"
        if judge == "kvm":
            return True
        if judge == "flags":
            if any(all(f in self.flags for f in alt) for alt in feature["flags"]):
                return True
            # Every x86-64 CPU sets CPUID.1:EDX.SEP, yet some older 64-bit kernels omit "sep"
            # from cpuinfo (seen in two captured dumps): its absence next to "lm" proves nothing.
            if name == "sep" and "lm" in self.flags:
                return None
            return False
        if judge == "bugs":
            # KVM sets these bits when the host kernel does not report the bug; a kernel
            # without a bugs line cannot tell.
            return None if self.bugs is None else not any(b in self.bugs for b in feature["bugs"])
        return None


def kvm_features(kvm_cpuid) -> list[str]:
    """Names of every feature whose CPUID bit or MSR bit KVM offers."""
    from kvmtune.probe.kvm_cpuid import offered_features

    return offered_features(kvm_cpuid, table.features())


def source_from_facts(cpu: dict):
    """The best source a check result carries: KVM's answers, else its cpuinfo."""
    if isinstance(cpu.get("kvm_features"), list):
        return KvmSource(cpu["kvm_features"])
    return CpuinfoSource(cpu.get("flags") or [], cpu.get("bugs"))


@record
class ModelVerdict:
    name: str
    vendor: str | None
    status: str
    missing: tuple
    undecided: tuple

    def to_json(self) -> dict:
        return {"name": self.name, "vendor": self.vendor, "status": self.status,
                "missing": list(self.missing), "undecided": list(self.undecided)}


def evaluate(source, assume_undecided: bool = False) -> list[ModelVerdict]:
    out = []
    cache: dict[str, bool | None] = {}
    for model in table.models():
        missing, undecided = [], []
        for name in table.required(model):
            if name not in cache:
                cache[name] = source.decide(name)
            decided = cache[name]
            if decided is False:
                missing.append(name)
            elif decided is None:
                undecided.append(name)
        if missing:
            status = NOT_USABLE
        elif undecided and not assume_undecided:
            status = UNDECIDED
        else:
            status = USABLE
        out.append(ModelVerdict(model["name"], model["vendor"], status, tuple(missing), tuple(undecided)))
    return out


def family(vendor: str | None) -> str:
    return vendor or "generic"


def best_per_vendor(verdicts: list[ModelVerdict], startable=None) -> dict[str, str]:
    """The newest usable model of each vendor family (libvirt's index is oldest first) that
    ``startable(name)`` allows (the hypervisor must be able to start it, not only the CPU)."""
    best: dict[str, str] = {}
    for v in verdicts:
        if v.status == USABLE and (startable is None or startable(v.name)):
            best[family(v.vendor)] = v.name
    return best


def host_pick(best: dict[str, str], cpu_vendor: str | None) -> str | None:
    """The model cpu-models recommends for a host: the best of its own vendor, else generic."""
    own = {v: k for k, v in table.vendors().items()}.get(cpu_vendor)
    return best.get(own or "generic") or best.get("generic")


VARIANT_SUFFIXES = ("-noTSX-IBRS", "-IBRS", "-noTSX", "-IBPB")


def model_family(name: str) -> str:
    """``Skylake-Server-noTSX-IBRS`` and ``Skylake-Server-v4`` -> ``Skylake-Server``."""
    head, _, version = name.rpartition("-v")
    if head and digits(version):
        name = head
    for suffix in VARIANT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def next_model(verdicts: list[ModelVerdict], best: str) -> ModelVerdict | None:
    """The first model of a newer family than ``best`` (same vendor) this source cannot run."""
    names = [v.name for v in verdicts]
    start = names.index(best)
    vendor = verdicts[start].vendor
    for v in verdicts[start + 1:]:
        if v.vendor == vendor and v.status != USABLE and model_family(v.name) != model_family(best):
            return v
    return None


def extra_features(model_name: str, present: set[str]) -> list[str]:
    """Host features beyond the model that newer models of its vendor use: worth +feat."""
    models = {m["name"]: m for m in table.models()}
    model = models[model_name]
    known = {f for m in table.models() if m["vendor"] == model["vendor"] for f in table.required(m)}
    feats = table.features()
    return sorted(f for f in present - set(model["features"])
                  if f in known and feats[f]["judge"] not in ("kvm", "nested", "qemu_off"))


def qemu_cpu(model: str, extras: list[str]) -> str:
    feats = table.features()
    return "-cpu " + ",".join([model] + [f"+{feats.get(f, {}).get('qemu', f)}" for f in extras])


def libvirt_cpu(model: str, extras: list[str]) -> str:
    lines = ["<cpu mode='custom' match='exact' check='partial'>",
             f"  <model fallback='forbid'>{model}</model>"]
    lines += [f"  <feature policy='require' name='{f}'/>" for f in extras]
    lines.append("</cpu>")
    return "\n".join(lines)


def present_features(source, names=None) -> set[str]:
    """Every feature the source says yes to (only those it can decide)."""
    return {n for n in (names or table.features()) if source.decide(n) is True}
