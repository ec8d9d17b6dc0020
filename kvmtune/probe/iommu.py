"""IOMMU: firmware tables, kernel IOMMU units, groups and their default domain type."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe.system import cmdline_values

TABLES = ("DMAR", "IVRS", "IORT")
CMDLINE_KEYS = ("intel_iommu", "amd_iommu", "iommu", "iommu.passthrough", "iommu.strict")


@record
class IommuFacts:
    tables: tuple[str, ...]  # ACPI tables present: DMAR (Intel), IVRS (AMD), IORT (Arm)
    tables_readable: bool  # /sys/firmware/acpi/tables was there to look at
    units: tuple[str, ...]  # /sys/class/iommu entries (dmar0, ivhd0...)
    groups: int
    group_types: dict[str, int]  # identity / DMA / DMA-FQ -> count
    cmdline: dict[str, str]
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "tables": list(self.tables),
            "units": list(self.units),
            "groups": self.groups,
            "group_types": dict(self.group_types),
            "cmdline": dict(self.cmdline),
        }


def read_iommu(host: Host, cmdline: list[tuple[str, str | None]]) -> IommuFacts:
    problems = []
    tables_dir = "sys/firmware/acpi/tables"
    tables = tuple(t for t in TABLES if host.exists(f"{tables_dir}/{t}"))
    groups = host.listdir("sys/kernel/iommu_groups")
    types: dict[str, int] = {}  # a dict, not Counter: collections costs 3 ms to import
    for group in groups:
        try:
            kind = host.read_optional(f"sys/kernel/iommu_groups/{group}/type")
        except HostError as exc:
            problems.append(f"/{exc.rel}: {exc.reason}")
            continue
        if kind:
            types[kind.strip()] = types.get(kind.strip(), 0) + 1
    cmd = {}
    for key in CMDLINE_KEYS:
        values = cmdline_values(cmdline, key)
        if values:
            cmd[key] = values[-1]
    return IommuFacts(tables, host.is_dir(tables_dir), tuple(host.listdir("sys/class/iommu")),
                      len(groups), dict(types), cmd, tuple(problems))
