"""``kvmtune devices [ADDRESS]``: every PCI function by IOMMU group with its passthrough
verdict; for one device, the steps to give it to a guest."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError

FACTS = ("pci", "host_needs", "iommu", "cpu")


class DevicesOptions(Options):
    def __init__(self, address: str | None = None, format: str = "text", root: str = "/"):
        self.address = address
        self.format = format
        self.root = root


def full_address(text: str) -> str:
    """01:00.0 -> 0000:01:00.0; anything that is not a PCI address is bad input."""
    from kvmtune.probe.pci_needs import pci_in

    address = text.strip().lower()
    if len(address) == 7:
        address = "0000:" + address
    if pci_in(address) != address or any(c not in "0123456789abcdef:." for c in address):
        raise UsageError(f"ADDRESS: {text!r} is not a PCI address (0000:01:00.0 or 01:00.0)")
    return address


def read_devices(root: str):
    import os

    from kvmtune.checks.read import read_facts
    from kvmtune.host.door import Host

    if not os.path.isdir(root):
        raise UsageError(f"--root: {root} is not a directory")
    facts = read_facts(Host(root), list(FACTS))
    if facts.known("pci") is None:
        from kvmtune.errors import KvmtuneError

        raise KvmtuneError(f"cannot list the PCI devices: {facts.reason('pci')}")
    return facts


def why_no_iommu(facts) -> str | None:
    """Why no device can be passed at all (the iommu check's own words), None if groups exist."""
    if facts.pci.groups:
        return None
    if facts.known("iommu") is None or facts.known("cpu") is None:
        return "the kernel set up no IOMMU groups"
    from kvmtune.checks.platform import check_iommu

    return check_iommu(facts.only(("iommu", "cpu"))).detail


def run_devices(opts: DevicesOptions) -> int:
    import sys

    from kvmtune.pci import ALONE, WITH_GROUP, devices_json, verdict

    address = full_address(opts.address) if opts.address else None
    facts = read_devices(opts.root)
    pci, needs = facts.pci, facts.known("host_needs")
    if needs is None and facts.reason("host_needs"):
        from kvmtune.probe.pci_needs import HostNeeds

        needs = HostNeeds({}, (facts.reason("host_needs"),))
    if address is not None and pci.get(address) is None:
        raise UsageError(f"ADDRESS: no PCI function {address} on this host "
                         f"({len(pci.functions)} functions; 'kvmtune devices' lists them)")
    report = devices_json(pci, needs)
    if address is not None:
        report = {"devices": [d for d in report["devices"] if d["address"] == address], "groups": report["groups"]}
    if opts.format == "json":
        from kvmtune.render.json_out import write_json

        write_json(report, sys.stdout)
    elif address is None:
        from kvmtune.render.devices_text import render_devices

        from kvmtune.pci import unsure_note

        render_devices(report, why_no_iommu(facts), unsure_note(needs), sys.stdout)
    else:
        from kvmtune.render.devices_steps import render_steps

        cpu = facts.known("cpu")
        render_steps(pci, needs, address, cpu.vendor if cpu else None, why_no_iommu(facts), sys.stdout)
    if address is not None:
        return EXIT_OK if verdict(pci, needs, address).verdict in (ALONE, WITH_GROUP) else EXIT_NOT_READY
    return EXIT_OK
