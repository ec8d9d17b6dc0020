"""iommu.groups, pci.acs, sriov and devices.vfio: what device passthrough and SR-IOV need.

iommu.groups, pci.acs and sriov look at every PCI function: they run only when an intent
adds them or --only names them, so plain check reads no PCI device.
"""

from __future__ import annotations

from kvmtune.checks.boot_hint import kernel_args_here as _args
from kvmtune.checks.facts import Facts
from kvmtune.checks.model import FAIL, INFO, PASS, TITLES, UNKNOWN, WARN, Check

ACS_OVERRIDE = ("the out-of-tree 'pcie_acs_override=' patch splits groups only by pretending isolation the "
                "hardware lacks: devices can still reach each other by peer-to-peer DMA")


def _endpoints(pci):
    return [f for f in pci.functions if f.iommu_group is not None and not f.is_bridge and f.class16 != 0x0600]


def check_iommu_groups(facts: Facts) -> Check:
    from kvmtune.pci import NEVER, WITH_GROUP, short, verdicts

    title = TITLES["iommu.groups"]
    pci = facts.pci
    needs = facts.known("host_needs")
    if not pci.functions:
        return Check("iommu.groups", UNKNOWN, title, "no PCI functions in /sys/bus/pci/devices to judge")
    if not pci.groups:
        return Check("iommu.groups", FAIL, title,
                     f"{len(pci.functions)} PCI functions, none in an IOMMU group: the kernel set up no IOMMU, "
                     "so no device can be passed to a guest",
                     "Enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware (AMD's IOMMU is then on "
                     "unless 'amd_iommu=off'); on Intel also add 'intel_iommu=on' (or apply a profile's "
                     f"'iommu:' section): {_args(facts)}.",
                     {"groups": {}})
    found = verdicts(pci, needs)
    data = {"groups": {g: list(m) for g, m in pci.groups.items()},
            # what is not simply "alone" (kvmtune devices --json lists every function)
            "verdicts": {a: v.to_json() for a, v in found.items() if v.verdict != "alone"},
            "host_needs": dict(needs.needs) if needs else None}
    takeable = _endpoints(pci)
    never = [f for f in takeable if found[f.address].verdict == NEVER]
    shared = [f for f in takeable if found[f.address].verdict == WITH_GROUP]
    counts = (f"{len(pci.groups)} groups; {sum(found[f.address].verdict == 'alone' for f in takeable)} endpoints "
              f"alone, {len(shared)} only with their group, {len(never)} never")
    if never:
        gpu_first = sorted(never, key=lambda f: f.kind != "gpu")  # what operators pass first
        lines = [f"{short(f.address)} ({f.kind}): never: {found[f.address].reason}" for f in gpu_first]
        return Check("iommu.groups", WARN, title, f"{counts}: " + "; ".join(lines[:4]),
            "Move the device to a slot with its own group (the CPU's slots usually have one), or keep it on "
            "the host; binding a group the host boots from to vfio-pci leaves it unable to boot. "
            f"Not a fix: {ACS_OVERRIDE}.", data)
    if needs is None or needs.problems:
        why = facts.reason("host_needs") or "; ".join(needs.problems)
        return Check("iommu.groups", UNKNOWN, title, f"{counts}; what the host needs could not be read: {why}",
                     None, data)
    return Check("iommu.groups", PASS, title, counts, None, data)


def check_pci_acs(facts: Facts) -> Check:
    from kvmtune.pci import short

    title = TITLES["pci.acs"]
    pci = facts.pci
    by_address = {f.address: f for f in pci.functions}
    above = {p for f in _endpoints(pci) for p in f.parents if p in by_address}
    if not above:
        return Check("pci.acs", UNKNOWN, title,
                     "no bridge above any device in this tree (it shows no PCI topology)", None, {})
    bridges = [by_address[a] for a in sorted(above)]
    data = {short(b.address): b.acs for b in bridges}
    unread = [b for b in bridges if b.acs is None]
    lacking = [b for b in bridges if b.acs is False]
    if lacking:
        return Check("pci.acs", WARN, title,
                     f"{len(lacking)} of {len(bridges)} bridges above devices have no ACS: "
                     + ", ".join(short(b.address) for b in lacking)
                     + " (the devices below each share one IOMMU group)",
                     f"Use a slot whose root port has ACS; {ACS_OVERRIDE}.", data)
    if unread:
        return Check("pci.acs", UNKNOWN, title,
                     f"extended config space not readable for {len(unread)} of {len(bridges)} bridges "
                     f"({unread[0].config_bytes} bytes of config: it needs root)",
                     "Run as root to read the bridges' extended capabilities.", data)
    return Check("pci.acs", PASS, title, f"all {len(bridges)} bridges above devices have ACS", None, data)


def check_sriov(facts: Facts) -> Check:
    from kvmtune.pci import short

    title = TITLES["sriov"]
    pci = facts.pci
    pfs = [f for f in pci.functions if f.sriov is not None]
    if not pfs:
        return Check("sriov", INFO, title, "no SR-IOV capable device (no sriov_totalvfs in sysfs)", None, {"pfs": {}})
    rules = facts.sriov_persist or {}
    data = {"pfs": {}}
    parts, idle, lost, differ = [], [], [], []
    for pf in pfs:
        s, rule = pf.sriov, rules.get(pf.address)
        vfs = [pci.get(v) for v in s.vfs]
        data["pfs"][pf.address] = {
            "totalvfs": s.totalvfs, "numvfs": s.numvfs, "drivers_autoprobe": s.autoprobe,
            "netdevs": list(pf.netdevs), "numa_node": pf.numa_node,
            "persisted": {"numvfs": rule.count, "by": rule.where} if rule else None,
            "vfs": [{"address": v.address, "iommu_group": v.iommu_group, "driver": v.driver}
                    for v in vfs if v is not None]}
        name = f"{short(pf.address)}" + (f" ({', '.join(pf.netdevs)})" if pf.netdevs else "")
        node = "" if pf.numa_node is None or pf.numa_node < 0 else f", node {pf.numa_node}"
        kept = f", {rule.count} at boot ({rule.where})" if rule else ""
        parts.append(f"{name}: {s.numvfs if s.numvfs is not None else '?'} of "
                     f"{s.totalvfs if s.totalvfs is not None else '?'} VFs{node}{kept}")
        if not s.numvfs:
            idle.append(pf)
        elif rule is None:
            lost.append(name)
        if rule and s.numvfs is not None and rule.count != s.numvfs:
            differ.append(f"{name}: {s.numvfs} now, {rule.count} after a reboot")
    detail = "; ".join(parts)
    if idle and len(idle) == len(pfs):
        return Check("sriov", WARN, title, f"no VFs configured: {detail}", _persist_hint(idle[0], now=True), data)
    if lost or differ:
        said = ([f"not persisted ({', '.join(lost)}: the VFs are gone after a reboot)"] if lost else []) + differ
        pf = next(p for p in pfs if p.sriov.numvfs and p.address not in rules) if lost else pfs[0]
        return Check("sriov", WARN, title, f"{'; '.join(said)}; {detail}", _persist_hint(pf, now=False), data)
    return Check("sriov", PASS, title, detail, None, data)


def _persist_hint(pf, now: bool) -> str:
    """The fix in udev's terms, as kvmtune's sriov section writes it (tune.sriov)."""
    first = f"Create them now with 'echo N > /sys/bus/pci/devices/{pf.address}/sriov_numvfs' and persist " \
        if now else "Persist "
    return (f"{first}them with a udev rule keyed by the PF's address: ACTION==\"add|bind\", SUBSYSTEM==\"pci\", "
            f"KERNEL==\"{pf.address}\", ATTR{{sriov_numvfs}}=\"N\" in /etc/udev/rules.d/ (or a profile's "
            "'sriov:' section), so the VFs exist before libvirtd or the network agents start.")


def check_vfio(facts: Facts) -> Check:
    from kvmtune.checks.devices import check_device_node

    base = check_device_node(facts, "devices.vfio")
    vfio = facts.vfio
    base.data.update(vfio.to_json())
    if base.status != PASS:
        return base
    extra = [f"modules: {', '.join(vfio.modules) or 'none'}", f"{len(vfio.group_nodes)} group nodes",
             "iommufd /dev/iommu" if vfio.iommufd else "no /dev/iommu (iommufd)"]
    base.detail += "; " + ", ".join(extra)
    if vfio.unsafe_interrupts and vfio.unsafe_interrupts.upper() in ("Y", "1"):
        base.status = WARN
        base.detail += "; vfio_iommu_type1.allow_unsafe_interrupts=Y: a guest's device can inject interrupts"
        base.hint = ("Remove 'allow_unsafe_interrupts=1' from /etc/modprobe.d and the kernel command line, and "
                     "enable interrupt remapping (x2APIC / 'intremap=on') in the firmware instead.")
    elif vfio.irq_remapping == "off":
        base.status = WARN
        base.detail += "; interrupt remapping is off: vfio refuses to assign devices"
        base.hint = "Enable interrupt remapping in the firmware (VT-d / AMD-Vi with x2APIC), and reboot."
    return base
