"""Who made the CPU, on hosts whose cpuinfo is not x86's: aarch64, 32-bit ARM, POWER, s390x.

Each architecture's kernel prints its own cpuinfo: aarch64 gives MIDR fields (implementer and
part numbers, decoded as lscpu does with kvmtune/data/arm_parts.json), POWER a ``cpu :`` line and
the ``platform``/``machine`` at the end, s390x ``features``/``facilities`` and, in /proc/sysinfo,
the machine type and what runs the system (an LPAR, z/VM or KVM).
"""

from __future__ import annotations

from kvmtune.grammar import digits
from kvmtune.probe import parse
from kvmtune.record import record


@record
class CoreType:
    vendor: str | None
    model: str | None
    cpus: tuple[int, ...]

    def to_json(self) -> dict:
        return {"vendor": self.vendor, "model": self.model, "cpus": parse.format_cpulist(list(self.cpus))}


@record
class ArchIdentity:
    arch: str
    vendor: str | None = None
    model_name: str | None = None
    features: tuple[str, ...] = ()
    facilities: tuple[int, ...] = ()  # s390x's STFLE facility numbers
    core_types: tuple[CoreType, ...] = ()  # aarch64: one per MIDR implementer/part
    platform: str | None = None  # POWER: PowerNV or pSeries; s390x: LPAR, z/VM ..., KVM/Linux
    machine: str | None = None  # POWER: the machine line; s390x: the machine type (2964)


def arch_of(first: dict[str, str]) -> str:
    """The architecture whose kernel printed this first cpuinfo block."""
    if "CPU implementer" in first:
        level = first.get("CPU architecture", "")
        return "aarch64" if level == "AArch64" or (digits(level) and int(level) >= 8) else "arm"
    if first.get("vendor_id", "").startswith("IBM/S390") or "facilities" in first:
        return "s390x"
    if "cpu" in first and "flags" not in first:
        return "ppc64"
    return "x86_64"


def identify(first: dict[str, str], text: str, sysinfo: str | None) -> ArchIdentity:
    arch = arch_of(first)
    if arch in ("aarch64", "arm"):
        return _arm(arch, first, text)
    if arch == "ppc64":
        platform = parse.line_values(text, "platform")
        machine = parse.line_values(text, "machine")
        return ArchIdentity(arch, None, first.get("cpu"), platform=platform[0] if platform else None,
                            machine=machine[0] if machine else None)
    if arch == "s390x":
        return _s390(first, sysinfo)
    return ArchIdentity(arch)


def _hex(value: str | None, width: int) -> str | None:
    """``0x48`` / ``0xd01`` spelled as the table keys them (the kernel's 0x%02x / 0x%03x)."""
    try:
        return f"0x{int(value or '', 16):0{width}x}" if value and value.isascii() else None
    except ValueError:
        return None


def _arm(arch: str, first: dict[str, str], text: str) -> ArchIdentity:
    from kvmtune.shipped import load_data

    table = load_data("arm_parts.json")["implementers"]
    cpus = [int(v) for v in parse.line_values(text, "processor") if digits(v)]
    implementers = parse.line_values(text, "CPU implementer")
    parts = parse.line_values(text, "CPU part")
    if len(parts) != len(cpus) or len(implementers) != len(cpus):
        # The old aarch64 format: the processor lines, then one block shared by all CPUs.
        implementers = [first.get("CPU implementer", "")] * len(cpus)
        parts = [first.get("CPU part", "")] * len(cpus)
    kinds: dict[tuple, list[int]] = {}
    for cpu, imp, part in zip(cpus, implementers, parts):
        entry = table.get(_hex(imp, 2) or "", {})
        kinds.setdefault((entry.get("vendor"), entry.get("parts", {}).get(_hex(part, 3) or "")), []).append(cpu)
    types = tuple(CoreType(v, m, tuple(sorted(c))) for (v, m), c in kinds.items())
    vendors = sorted({t.vendor for t in types if t.vendor})
    models = [t.model for t in types if t.model]
    return ArchIdentity(arch, vendors[0] if len(vendors) == 1 else None,
                        " + ".join(models) if models else None,
                        features=tuple(first.get("Features", "").split()), core_types=types)


def _s390(first: dict[str, str], sysinfo: str | None) -> ArchIdentity:
    info = {}
    for line in (sysinfo or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), " ".join(value.split()))  # "z/VM    6.1.0" as lscpu prints it
    machine = info.get("Type")
    if not machine:  # no sysinfo: cpuinfo's "processor 0: ... machine = 3931"
        machine = first.get("processor 0", "").rpartition("machine = ")[2].strip() or None
    if "VM00 Control Program" in info:
        platform = info["VM00 Control Program"]
    elif "LPAR Name" in info:
        platform = "LPAR"
    else:
        platform = None
    facilities = tuple(int(f) for f in first.get("facilities", "").split() if digits(f))
    return ArchIdentity("s390x", first.get("vendor_id"), None, tuple(first.get("features", "").split()),
                        facilities, platform=platform, machine=machine)
