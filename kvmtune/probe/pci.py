"""PCI functions as sysfs shows them: ids, class, driver, IOMMU group, SR-IOV, ACS.

Every function is listed once from /sys/bus/pci/devices (its entries are links into
/sys/devices, whose path names the bridges above it). Parsers take text or bytes; the
reader only reads. What the host itself needs (its disks and default route) is in
kvmtune.probe.pci_needs; the verdicts are in kvmtune.pci.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.grammar import hex_number, number
from kvmtune.record import record

BUS = "sys/bus/pci/devices"
GROUPS = "sys/kernel/iommu_groups"
# The top 16 bits of the class code (PCI Code and ID Assignment spec): the prog-if byte
# below them is not needed to tell a GPU from a disk, and listings often omit it.
KINDS = {0x0108: "nvme", 0x0403: "audio", 0x0401: "audio", 0x0200: "ethernet", 0x0c03: "usb"}
KIND_BY_BASE = {0x03: "gpu", 0x01: "storage", 0x06: "bridge"}
PCI_TO_PCI = 0x0604
ACS_CAP = 0x000D  # PCI Express extended capability id of Access Control Services
EXT_CAPS = 0x100  # extended capabilities start here, beyond the 256 bytes of legacy config space


@record
class Sriov:
    totalvfs: int | None
    numvfs: int | None
    autoprobe: bool | None
    vfs: tuple[str, ...]  # VF addresses, from the virtfn* links, in link order


@record
class PciFunction:
    address: str  # 0000:01:00.0
    vendor: str | None  # "0x10de", as sysfs writes it
    device: str | None
    pci_class: str | None  # "0x030000"; None where the tree has no class file
    driver: str | None  # the driver link's target name (its directory need not exist)
    numa_node: int | None
    reset_method: str | None
    driver_override: str | None  # None when unset ("(null)")
    iommu_group: str | None
    header_type: int | None  # from config space; None when config is not readable
    parents: tuple[str, ...]  # bridges above it, nearest last (empty when the tree shows no topology)
    sriov: Sriov | None
    physfn: str | None  # for a VF, its PF
    netdevs: tuple[str, ...]
    acs: bool | None  # has the ACS capability; None: extended config space not readable
    config_bytes: int = 0

    @property
    def class16(self) -> int | None:
        return class16(self.pci_class)

    @property
    def kind(self) -> str:
        return kind_of(self.class16)

    @property
    def is_bridge(self) -> bool:
        """A PCI-to-PCI bridge (class 0x0604, header type 1): vfio's group check lets it stay."""
        return self.class16 == PCI_TO_PCI and self.header_type in (1, None)

    @property
    def ids(self) -> str:
        return f"{_hex4(self.vendor)}:{_hex4(self.device)}"


@record
class PciFacts:
    functions: tuple[PciFunction, ...]
    groups: dict[str, tuple[str, ...]]  # group number -> member addresses (from the functions' links)
    problems: tuple[str, ...] = ()
    # False where the tree shows no driver binding at all (a listing without drivers): then
    # "no driver link" does not mean unbound, and vfio's "driverless may stay" cannot be used.
    drivers_known: bool = True

    def get(self, address: str) -> PciFunction | None:
        return next((f for f in self.functions if f.address == address), None)


def _hex4(text: str | None) -> str:
    return "????" if not text else text.strip().lower().removeprefix("0x").rjust(4, "0")


def class16(text: str | None) -> int | None:
    """The class and subclass of a sysfs ``class`` value ("0x030000" -> 0x0300)."""
    try:
        return hex_number(text.strip()) >> 8 if text and text.strip() else None
    except ValueError:
        return None


def kind_of(code: int | None) -> str:
    if code is None:
        return "other"
    return KINDS.get(code) or KIND_BY_BASE.get(code >> 8, "other")


def parse_header_type(config: bytes) -> int | None:
    """Header type (offset 0x0E, bit 7 is the multi-function flag)."""
    return config[0x0E] & 0x7F if len(config) > 0x0E else None


def parse_acs(config: bytes) -> bool | None:
    """Whether the extended capability list holds ACS; None when the extended space was not
    readable (an unprivileged read gives 64 bytes, a conventional device 256)."""
    if len(config) <= EXT_CAPS:
        return None
    offset, seen = EXT_CAPS, set()
    while offset and offset not in seen and offset + 4 <= len(config):
        seen.add(offset)
        header = int.from_bytes(config[offset:offset + 4], "little")
        if header == 0 or header == 0xFFFFFFFF:
            return False
        if header & 0xFFFF == ACS_CAP:
            return True
        offset = (header >> 20) & 0xFFC
    return False


def parse_parents(target: str | None, address: str) -> tuple[str, ...]:
    """The PCI addresses above a function, from its bus link's target
    (../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0)."""
    if not target:
        return ()
    parts = [p for p in target.split("/") if _is_address(p)]
    return tuple(parts[:-1]) if parts and parts[-1] == address else ()


def _is_address(name: str) -> bool:
    return len(name) == 12 and name[4] == ":" and name[7] == ":" and name[10] == "."


def _base(link: str | None) -> str | None:
    return link.rstrip("/").rsplit("/", 1)[-1] if link else None


def read_pci(host) -> PciFacts:
    problems: list[str] = []
    functions = []
    for address in host.listdir(BUS):
        if _is_address(address):
            functions.append(_read_function(host, address, problems))
    groups: dict[str, list[str]] = {}
    for f in functions:
        if f.iommu_group is not None:
            groups.setdefault(f.iommu_group, []).append(f.address)
    ordered = {g: tuple(groups[g]) for g in sorted(groups, key=lambda g: (len(g), g))}  # numeric order
    known = any(f.driver for f in functions) or host.is_dir("sys/bus/pci/drivers") or not functions
    return PciFacts(tuple(functions), ordered, tuple(problems), known)


def _read_function(host, address: str, problems: list[str]) -> PciFunction:
    rel = f"{BUS}/{address}"
    entries = set(host.listdir(rel))

    def text(name: str) -> str | None:
        if name not in entries:
            return None
        try:
            value = host.read_optional(f"{rel}/{name}", limit=4096)
        except HostError as exc:
            problems.append(f"/{rel}/{name}: {exc.reason}")
            return None
        return value.strip() if value is not None else None

    config = b""
    if "config" in entries:
        try:
            config = host.read_bytes(f"{rel}/config", limit=4096)
        except HostError as exc:
            problems.append(f"/{rel}/config: {exc.reason}")
    sriov = None
    if "sriov_totalvfs" in entries or "sriov_numvfs" in entries:
        # virtfn0..virtfnN-1 by number, not by listing: a snapshot keeps links in its manifest
        numvfs = number(text("sriov_numvfs"))
        autoprobe = text("sriov_drivers_autoprobe")
        sriov = Sriov(number(text("sriov_totalvfs")), numvfs, None if autoprobe is None else autoprobe == "1",
                      tuple(filter(None, (_base(host.readlink(f"{rel}/virtfn{i}")) for i in range(min(numvfs or 0, 256))))))
    override = text("driver_override")
    netdevs = tuple(n for n in host.listdir(f"{rel}/net")) if "net" in entries else ()
    return PciFunction(
        address, text("vendor"), text("device"), text("class"),
        _base(host.readlink(f"{rel}/driver")),  # links read, not looked for in the listing (as virtfn)
        number(text("numa_node")), text("reset_method"),
        None if override in (None, "", "(null)") else override,
        _base(host.readlink(f"{rel}/iommu_group")),
        parse_header_type(config), parse_parents(host.readlink(rel), address), sriov,
        _base(host.readlink(f"{rel}/physfn")),
        netdevs, parse_acs(config), len(config))
