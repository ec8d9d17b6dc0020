"""What binding PCI devices to vfio-pci needs read: each device's binding and real sysfs
directory, whether vfio-pci is there to bind to, and what uses a device now.

A device's binding is its ``driver`` link and its ``driver_override``. Its directory is
where ``/sys/bus/pci/devices/ADDRESS`` points (a snapshot built from a listing keeps it
there as a plain directory): writes go to it by that real path, never through the link.
"Used now" is what the host needs at boot (probe.pci_needs) plus a mounted filesystem
on any of the device's disks and a network interface that is up. Parsers take text.
"""

from __future__ import annotations

import posixpath
import re

from kvmtune.errors import HostError
from kvmtune.grammar_pci import driver_name_problem, pci_dir_problem
from kvmtune.record import record

BUS = "sys/bus/pci/devices"
DRIVER = "vfio-pci"
LOADED, MODULE, ABSENT = "loaded", "module", "absent"  # where vfio-pci stands on this kernel
RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")
KO = ("vfio-pci.ko", "vfio-pci.ko.xz", "vfio-pci.ko.zst", "vfio-pci.ko.gz")


@record
class Binding:
    driver: str | None  # the driver link's target name; None: no driver bound
    override: str | None  # driver_override; None: not set ("(null)")

    def to_json(self) -> dict:
        return {"driver": self.driver, "override": self.override}


@record
class VfioBindFacts:
    pci: object  # probe.pci.PciFacts
    needs: object  # probe.pci_needs.HostNeeds
    vfio_pci: str  # LOADED, MODULE or ABSENT
    release: str | None  # the running kernel's release (proc/sys/kernel/osrelease)
    dirs: dict  # address -> its real sysfs directory (None: not one kvmtune may write)
    bindings: dict  # address -> Binding (None: no driver_override file to bind with)
    in_use: dict  # address -> what uses it now besides what the host needs at boot
    original: dict  # address -> the driver kvmtune's journal says it had before vfio-pci
    live: bool = True  # False: a snapshot, where no kernel binds and driver_override alone tells
    boot_vga: tuple = ()  # the addresses whose boot_vga is 1: the firmware's console is on them


def parse_override(text: str | None) -> str | None:
    value = None if text is None else text.strip()
    return None if value in (None, "", "(null)") else value


def device_dir(host, address: str) -> str | None:
    """The real directory of a device, from its bus link (relative, or absolute in the
    tree); None where it is not a PCI device directory by kvmtune's grammar."""
    rel = f"{BUS}/{address}"
    link = host.readlink(rel)
    if link is None:
        found = rel if host.is_dir(rel) else None
    else:
        found = posixpath.normpath(link.lstrip("/") if link.startswith("/") else posixpath.join(BUS, link))
    return found if found is not None and pci_dir_problem(found, address) is None else None


def read_binding(host, directory: str) -> Binding | None:
    """A device's binding now; None when its directory has no driver_override (kernels
    before 3.16) or is gone."""
    override = host.read_optional(f"{directory}/driver_override", limit=4096)
    if override is None:
        return None
    link = host.readlink(f"{directory}/driver")
    return Binding(link.rstrip("/").rsplit("/", 1)[-1] if link else None, parse_override(override))


def read_vfio_pci(host) -> tuple[str, str | None]:
    """(LOADED | MODULE | ABSENT, kernel release): vfio-pci registered as a driver (built in or
    loaded), a module this kernel could load, or neither."""
    release = (host.read_optional("proc/sys/kernel/osrelease") or "").strip() or None
    if host.is_dir(f"sys/bus/pci/drivers/{DRIVER}"):
        return LOADED, release
    if release and RELEASE.fullmatch(release):
        base = f"lib/modules/{release}/kernel/drivers/vfio/pci"
        if any(host.exists(f"{base}/{ko}") for ko in KO):
            return MODULE, release
    return ABSENT, release


def read_in_use(host, addresses, mountinfo: str | None) -> dict[str, tuple[str, ...]]:
    """address -> what uses it now: filesystems mounted from its disks, interfaces up."""
    from kvmtune.probe.pci_needs import parse_mountinfo, pci_in

    wanted = set(addresses)
    used: dict[str, list[str]] = {}
    for point, (majmin, _) in sorted(parse_mountinfo(mountinfo or "").items()):
        if not majmin or majmin.startswith("0:"):
            continue
        address = pci_in(host.readlink(f"sys/dev/block/{majmin}"))
        if address in wanted:
            used.setdefault(address, []).append(f"a filesystem mounted at {point}")
    for address in sorted(wanted):
        for iface in host.listdir(f"{BUS}/{address}/net"):
            state = (host.read_optional(f"{BUS}/{address}/net/{iface}/operstate") or "").strip()
            if state == "up":
                used.setdefault(address, []).append(f"network interface {iface}, which is up")
    return {a: tuple(w) for a, w in used.items()}


def read_vfio_bind(host, pci, addresses, original: dict) -> VfioBindFacts:
    """What the vfio section plans from, for the devices it may bind (``addresses``: its
    entries' devices and their groups' members; ``original``: as VfioBindFacts.original)."""
    from kvmtune.probe.pci_needs import read_host_needs

    needs = read_host_needs(host)
    state, release = read_vfio_pci(host)
    dirs, bindings = {}, {}
    for address in addresses:
        dirs[address] = directory = device_dir(host, address)
        try:
            binding = read_binding(host, directory) if directory else None
        except HostError:
            binding = None
        if binding is not None and any(n is not None and driver_name_problem(n)
                                       for n in (binding.driver, binding.override)):
            binding = None  # a name kvmtune could not write back: not bound by it
        bindings[address] = binding
    boot_vga = tuple(a for a in addresses if (host.read_optional(f"{BUS}/{a}/boot_vga") or "").strip() == "1")
    mountinfo = host.read_optional("proc/self/mountinfo", limit=16 << 20)
    return VfioBindFacts(pci, needs, state, release, dirs, bindings, read_in_use(host, addresses, mountinfo),
                         original, host.live, boot_vga)
