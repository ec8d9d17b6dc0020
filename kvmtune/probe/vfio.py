"""VFIO as the kernel offers it: modules, per-group nodes, iommufd, unsafe interrupts, and
interrupt remapping (which the IOMMU drivers report only in the kernel log)."""

from __future__ import annotations

from kvmtune.record import record

MODULES = ("vfio", "vfio_pci", "vfio_iommu_type1", "iommufd")
UNSAFE = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
# Lines of the Intel (drivers/iommu/intel/irq_remapping.c) and AMD (amd/init.c) drivers.
REMAP_ON = ("enabled irq remapping", "interrupt remapping enabled")
REMAP_OFF = ("irq remapping was disabled", "not enabling interrupt remapping",
             "failed to enable irq remapping", "interrupt remapping disabled", "irq remapping disabled")


@record
class VfioFacts:
    modules: tuple[str, ...]  # present under /sys/module (loaded or built in)
    group_nodes: tuple[str, ...]  # /dev/vfio/<group>
    iommufd: bool  # /dev/iommu
    unsafe_interrupts: str | None  # vfio_iommu_type1.allow_unsafe_interrupts (Y/N), None if absent
    irq_remapping: str  # "on", "off" or "unknown" (no log to read, or no line about it)

    def to_json(self) -> dict:
        return {"modules": list(self.modules), "group_nodes": list(self.group_nodes),
                "iommufd": self.iommufd, "allow_unsafe_interrupts": self.unsafe_interrupts,
                "irq_remapping": self.irq_remapping}


def parse_irq_remapping(lines) -> str:
    state = "unknown"
    for line in lines:
        low = line.lower()
        if any(n in low for n in REMAP_OFF):
            state = "off"
        elif any(n in low for n in REMAP_ON):
            state = "on"
    return state


def read_vfio(host) -> VfioFacts:
    modules = tuple(m for m in MODULES if host.exists(f"sys/module/{m}"))
    nodes = tuple(n for n in host.listdir("dev/vfio") if n != "vfio")
    unsafe = host.read_optional(UNSAFE)
    remap = "unknown"
    # The kernel log is read only where an IOMMU is on: it is the slow read, and says nothing otherwise.
    if host.live and host.listdir("sys/kernel/iommu_groups"):
        remap = parse_irq_remapping(host.kernel_log())
    return VfioFacts(modules, nodes, host.exists("dev/iommu"),
                     unsafe.strip() if unsafe else None, remap)
