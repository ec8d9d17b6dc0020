"""Passthrough verdicts: which PCI functions a guest can take, and what goes with them.

Pure functions of the PCI facts and what the host needs. The rule is vfio's group
check (drivers/vfio/group.c, vfio_dev_viable): every device of an IOMMU group goes to
the guest together, except PCI-to-PCI bridges and devices bound to no driver, which may
stay. vfio-pci binds only header type 0 functions (vfio_pci_probe), so a bridge itself
is never passed.
"""

from __future__ import annotations

from kvmtune.record import record

ALONE, WITH_GROUP, NEVER, NO_IOMMU = "alone", "with-group", "never", "no-iommu"
VERDICTS = (ALONE, WITH_GROUP, NEVER, NO_IOMMU)
KIND_NAMES = {"gpu": "GPU", "audio": "audio function", "nvme": "NVMe", "storage": "storage controller",
              "ethernet": "network adapter", "usb": "USB controller", "bridge": "bridge", "other": "device"}


@record
class Verdict:
    verdict: str
    with_: tuple[str, ...]  # the group's devices that must go to the guest too
    reason: str

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "with": list(self.with_), "reason": self.reason}


def short(address: str) -> str:
    return address[5:] if address.startswith("0000:") else address


def describe(fn, needs) -> str:
    """'02:00.0, the NVMe that holds root filesystem' / '01:00.1, its audio function'."""
    what = KIND_NAMES[fn.kind]
    why = needs.needs.get(fn.address) if needs else None
    if why:
        return f"{short(fn.address)}, the {what} that holds {' and '.join(why)}"
    return f"{short(fn.address)} ({what}, {fn.driver or 'no driver'})"


def verdict(pci, needs, address: str, index: dict | None = None) -> Verdict:
    """``needs`` is HostNeeds, or None when what the host needs could not be read; ``index``
    (address -> function) spares a search per group member when judging every function."""
    get = (index or {f.address: f for f in pci.functions}).get
    fn = get(address)
    if fn.iommu_group is None:
        why = ("the kernel set up no IOMMU groups (IOMMU off or absent)" if not pci.groups
               else "no iommu_group link: not behind an IOMMU")
        return Verdict(NO_IOMMU, (), why)
    members = [get(a) for a in pci.groups.get(fn.iommu_group, ()) if a != address]
    if fn.is_bridge:
        return Verdict(NEVER, (), "a PCI-to-PCI bridge: vfio-pci takes only endpoints (header type 0)")
    own = needs.needs.get(address) if needs else None
    if own:
        return Verdict(NEVER, (), f"the host needs it for {' and '.join(own)}")
    bound = (lambda m: m.driver is not None) if pci.drivers_known else (lambda m: True)
    going = tuple(m.address for m in members if m is not None and not m.is_bridge and bound(m))
    kept = [m for m in members if m is not None and needs and m.address in needs.needs]
    if kept:
        return Verdict(NEVER, going, f"it shares group {fn.iommu_group} with "
                       + "; ".join(describe(m, needs) for m in kept))
    unsure = unsure_note(needs) + ("" if pci.drivers_known else
                                   "; this tree shows no drivers, so every device in the group counts as bound")
    if going:
        return Verdict(WITH_GROUP, going, f"it must go with group {fn.iommu_group}: "
                       + "; ".join(describe(get(a), needs) for a in going) + unsure)
    stays = [short(m.address) for m in members if m is not None]
    note = f" ({', '.join(stays)} may stay: bridge or no driver)" if stays else ""
    return Verdict(ALONE, (), f"alone in group {fn.iommu_group}{note}" + unsure)


def unsure_note(needs) -> str:
    """The end of every reason when what the host needs is not fully known."""
    if needs is not None and not needs.problems:
        return ""
    return "; what the host needs could not be read: " + ("; ".join(needs.problems) if needs else "not read")


def verdicts(pci, needs) -> dict[str, Verdict]:
    index = {f.address: f for f in pci.functions}
    return {f.address: verdict(pci, needs, f.address, index) for f in pci.functions}


def device_json(fn, v: Verdict, needs) -> dict:
    s = fn.sriov
    return {
        "address": fn.address, "vendor": fn.vendor, "device": fn.device, "class": fn.pci_class,
        "kind": fn.kind, "driver": fn.driver, "iommu_group": fn.iommu_group, "numa_node": fn.numa_node,
        "sriov": None if s is None else {"totalvfs": s.totalvfs, "numvfs": s.numvfs, "vfs": list(s.vfs)},
        "host_needs": list(needs.needs.get(fn.address, ())) if needs else [],
        "passthrough": v.to_json(),
    }


def devices_json(pci, needs) -> dict:
    found = verdicts(pci, needs)
    return {"devices": [device_json(f, found[f.address], needs) for f in pci.functions],
            "groups": {g: list(m) for g, m in pci.groups.items()}}


def matching(pci, entry: str) -> list[str]:
    """The functions a vfio entry names: its address, or every function with its ids."""
    entry = entry.lower()
    if entry.count(":") == 2:
        return [entry] if pci.get(entry) is not None else []
    return [f.address for f in pci.functions if f.ids == entry]


def group_of(pci, address: str) -> list[str]:
    """What binding ``address`` to vfio-pci takes with it: itself and every member of its IOMMU
    group but the PCI-to-PCI bridges, which vfio's group check lets stay (and vfio-pci cannot
    take). Devices with no driver are taken too: a driver that later probes one would make
    the group unusable to the guest. A device with no group is alone."""
    fn = pci.get(address)
    if fn is None or fn.iommu_group is None:
        return [address]
    members = [pci.get(a) for a in pci.groups.get(fn.iommu_group, ())]
    return [address, *(m.address for m in members if m is not None and m.address != address and not m.is_bridge)]


def binding_lines(pci, addresses: list[str], original: dict | None = None) -> tuple[list[str], list[str]]:
    """(modprobe.d lines, udev lines) that bind ``addresses`` to vfio-pci at boot. ``vfio-pci
    ids=`` claims every device with those ids, so where a device the guest does not take
    shares them, a driver_override rule keyed by address is the only safe way. ``original``:
    the driver each had before vfio-pci took it (for the softdep, once it is bound)."""
    chosen = [pci.get(a) for a in addresses]
    ids = list(dict.fromkeys(f.ids for f in chosen))
    shared = [f for f in pci.functions if f.address not in addresses and f.ids in ids]
    was = original or {}
    drivers = list(dict.fromkeys(d for d in (was.get(f.address) if f.driver == "vfio-pci" else f.driver
                                             for f in chosen) if d and d != "vfio-pci"))
    softdeps = [f"softdep {d} pre: vfio-pci" for d in drivers]
    if shared or any("?" in i for i in ids):  # ids the tree does not show cannot be an ids= option
        # no ACTION match: short enough to copy from an 80-column terminal, and harmless on change events
        return softdeps, [f'SUBSYSTEM=="pci", KERNEL=="{a}", ATTR{{driver_override}}="vfio-pci"' for a in addresses]
    return [f"options vfio-pci ids={','.join(ids)}", *softdeps], []
