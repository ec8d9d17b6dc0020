"""The IOMMU mode: kernel arguments through the boot loader (tune.persist), and what the running
kernel shows, which only a reboot changes.

The arguments (Documentation/admin-guide/kernel-parameters.txt):
- Intel: ``intel_iommu=on``, since VT-d is off unless the kernel was built with
  CONFIG_INTEL_IOMMU_DEFAULT_ON. AMD: nothing; ``amd_iommu=`` takes only off, fullflush,
  force_isolation, force_enable and page-table choices, there is no ``amd_iommu=on``: the AMD
  IOMMU is on unless ``amd_iommu=off`` (which kvmtune reports and leaves to the operator).
- pt: ``iommu=pt`` on x86 (identity domains: the host's own DMA bypasses translation),
  ``iommu.passthrough=1`` elsewhere (ARM64 documents only that form).
- lazy and strict: ``iommu.passthrough=0`` (translated, whatever CONFIG_IOMMU_DEFAULT_PASSTHROUGH
  or an earlier ``iommu=pt`` says: the later argument wins) and ``iommu.strict=0`` (lazy: unmaps
  flushed in batches, the DMA-FQ domain) or ``iommu.strict=1`` (strict: the DMA domain).
The running kernel's mode is read from /sys/kernel/iommu_groups/*/type (identity, DMA-FQ, DMA):
the change that says so is OBSERVED, never written or journaled; it is ``ok`` once the command
line has the arguments and the groups have the mode, ``pending-reboot`` until then.
"""

from __future__ import annotations

from kvmtune.record import record
from kvmtune.tune.change import BLOCKED, OK, PENDING_REBOOT, REBOOT, Change
from kvmtune.tune.sections import section

DOMAIN_TYPE = {"pt": "identity", "lazy": "DMA-FQ", "strict": "DMA"}
MODE_OF = {t: m for m, t in DOMAIN_TYPE.items()}
VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "amd"}
TABLE_VENDOR = {"DMAR": "intel", "IVRS": "amd", "IORT": "arm"}


@record
class IommuState:
    vendor: str | None  # "intel", "amd", "other" (not x86), or None: not known
    evidence: str  # where the vendor came from
    group_types: dict  # default domain type -> number of groups


def kernel_args(mode: str, vendor: str | None) -> list[str]:
    args = ["intel_iommu=on"] if vendor == "intel" else []
    if mode == "pt":
        return args + ["iommu=pt" if vendor in ("intel", "amd") else "iommu.passthrough=1"]
    return args + ["iommu.passthrough=0", f"iommu.strict={0 if mode == 'lazy' else 1}"]


def missing_args(args: list[str], cmdline) -> list[str]:
    """The arguments the running kernel lacks: the last value of a key is the one it took."""
    last = {}
    for key, value in cmdline:
        last[key] = value
    out = []
    for arg in args:
        key, _, value = arg.partition("=")
        found = last.get(key)
        # intel_iommu takes a comma list (intel_iommu=on,sm_on): "on" among them is on
        if found is None or (found != value and not (key == "intel_iommu" and value in found.split(","))):
            out.append(arg)
    return out


def running_mode(types: dict) -> str:
    """What the groups show: a mode, "off" (no groups), or the types when they are mixed."""
    if not types:
        return "off (no IOMMU groups)"
    if len(types) == 1:
        kind = next(iter(types))
        return MODE_OF.get(kind, kind)
    return ", ".join(f"{n} groups {MODE_OF.get(k, k)}" for k, n in sorted(types.items(), key=lambda kv: -kv[1]))


class IommuModeChange(Change):
    """The running kernel's IOMMU mode against the profile's: reported, never carried out."""

    OBSERVED = True
    when = REBOOT
    __slots__ = ()
    target = property(lambda self: "IOMMU mode (running kernel)")

    def execute(self, host, ctx) -> None:
        raise AssertionError("the running kernel's IOMMU mode changes only at a reboot")

    def undo(self, host) -> None:
        raise AssertionError("the running kernel's IOMMU mode changes only at a reboot")


def plan_iommu(profile, facts, ctx) -> list:
    if profile.iommu is None:
        return []
    mode, node = profile.iommu
    state = facts.iommu
    if state.vendor is None:
        ctx.warnings.append(f"iommu: the CPU vendor is not known here ({state.evidence}): intel_iommu=on is not "
                            "added; add it by hand on an Intel host")
    args = kernel_args(mode, state.vendor)
    if state.vendor == "amd" and missing_args(["amd_iommu=off"], facts.cmdline) == []:
        ctx.warnings.append("iommu: the running kernel has amd_iommu=off, which turns the AMD IOMMU off: "
                            "remove it from the boot configuration by hand (kvmtune adds arguments, it removes none)")
    lacking = missing_args(args, facts.cmdline)
    seen = running_mode(state.group_types)
    if not lacking and seen == mode:
        return [IommuModeChange(seen, mode, OK, "the running kernel has " + " ".join(args))]
    if not ctx.persist:
        ctx.warnings.append("--no-persist: the iommu section's kernel arguments apply only at boot, so they are "
                            "not set")
        return [IommuModeChange(seen, mode, BLOCKED, "--no-persist: the kernel arguments are not written")]
    ctx.shared.setdefault("boot_groups", []).append(("IOMMU mode", args))
    loader = facts.boot_loader
    if not lacking:  # the arguments are there, the groups are not in the mode
        why = ("the kernel set up no IOMMU: enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware"
               if not state.group_types else
               f"the IOMMU driver keeps {seen} (lazy falls back to strict where the driver lacks it)")
        return [IommuModeChange(seen, mode, BLOCKED, f"the running kernel has {' '.join(args)}, but {why}")]
    if loader is not None and not loader.editable and not facts.bls:
        return [IommuModeChange(seen, mode, BLOCKED, f"add '{' '.join(lacking)}' to the kernel command line by hand, "
                                                     "then reboot")]
    return [IommuModeChange(seen, mode, PENDING_REBOOT,
                            f"from the next boot: the boot configuration gets {' '.join(args)}; "
                            f"the running kernel lacks {' '.join(lacking)}")]


def read_state(host, cmdline) -> IommuState:
    from kvmtune.probe.cpu import parse_cpuinfo
    from kvmtune.probe.cpu_arch import arch_of
    from kvmtune.probe.iommu import read_iommu

    facts = read_iommu(host, list(cmdline))
    text = host.read_optional("proc/cpuinfo", limit=16 << 20)
    first = parse_cpuinfo(text).first if text else {}
    vendor, evidence = None, "no /proc/cpuinfo"
    if first:
        if arch_of(first) == "x86_64":
            vendor, evidence = VENDORS.get(first.get("vendor_id", ""), "other"), f"vendor_id {first.get('vendor_id')}"
        else:
            vendor, evidence = "other", f"a {arch_of(first)} CPU"
    else:
        table = next((t for t in facts.tables if t in TABLE_VENDOR), None)
        if table:
            vendor, evidence = TABLE_VENDOR[table].replace("arm", "other"), f"the ACPI {table} table"
        else:
            evidence += ", no DMAR or IVRS table"
    return IommuState(vendor, evidence, dict(facts.group_types))


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.iommu is not None:
        out["iommu"] = read_state(host, out.get("cmdline", ()))


section("iommu", order=88, reads=_read, plan=plan_iommu)
