"""Which PCI functions the host itself needs: the disks under /, /boot, /var and swap, and
the network interface that holds the default route.

A block device or interface is followed to the PCI function it hangs off by its sysfs
link (/sys/dev/block/MAJ:MIN, /sys/class/block/NAME, /sys/class/net/NAME: their targets
run through /sys/devices/pci.../ADDRESS), through device-mapper slaves and the lower
devices of bonds and bridges. Parsers take text; what cannot be resolved is said, never guessed.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.grammar import digits
from kvmtune.record import record

MOUNTS = ("/", "/boot", "/var")
NAMES = {"/": "root filesystem", "/boot": "/boot", "/var": "/var"}
DEPTH = 8  # device-mapper over md over partitions: deeper stacks are not followed


@record
class HostNeeds:
    needs: dict[str, tuple[str, ...]]  # PCI address -> what the host needs it for
    problems: tuple[str, ...]  # what could not be resolved (then the needs are incomplete)


def parse_mountinfo(text: str) -> dict[str, tuple[str, str]]:
    """Mount point -> (MAJ:MIN, source) for the last mount at each point (it hides the others)."""
    mounts = {}
    for line in text.split("\n"):
        fields = line.split()
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) > dash + 2:
            mounts[_unescape(fields[4])] = (fields[2], _unescape(fields[dash + 2]))
    return mounts


def parse_mounts(text: str) -> dict[str, tuple[str, str]]:
    """/proc/self/mounts (no device numbers): mount point -> ("", source)."""
    mounts = {}
    for line in text.split("\n"):
        fields = line.split()
        if len(fields) >= 2:
            mounts[_unescape(fields[1])] = ("", _unescape(fields[0]))
    return mounts


def parse_swaps(text: str) -> tuple[str, ...]:
    return tuple(_unescape(line.split()[0]) for line in text.split("\n")[1:] if line.split())


def parse_default_routes(route: str | None, route6: str | None) -> tuple[str, ...]:
    """Interfaces of the IPv4 (destination and mask 0) and IPv6 (::/0) default routes."""
    found = []
    for line in (route or "").split("\n")[1:]:
        f = line.split()
        if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000" and f[0] not in found:
            found.append(f[0])
    for line in (route6 or "").split("\n"):
        f = line.split()
        if len(f) == 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo" and f[9] not in found:
            found.append(f[9])
    return tuple(found)


def _unescape(text: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal (\040)
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and len(text[i + 1:i + 4]) == 3 and digits(text[i + 1:i + 4]):
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def pci_in(target: str | None) -> str | None:
    """The last PCI address in a sysfs link target, None if it runs through no PCI function."""
    for part in reversed((target or "").split("/")):
        if len(part) == 12 and part[4] == ":" and part[7] == ":" and part[10] == ".":
            return part
    return None


def read_host_needs(host, mounts_fact=None, mounts_read: bool = False) -> HostNeeds:
    """``mounts_fact``: the read phase's /proc/mounts (system.Mount records, None if absent),
    the fallback where /proc/self/mountinfo is not there; ``mounts_read``: the read phase
    has read it, so it is not read a second time."""
    needs: dict[str, list[str]] = {}
    problems: list[str] = []

    def need(address: str, why: str) -> None:
        if why not in needs.setdefault(address, []):
            needs[address].append(why)

    mounts = {}
    try:
        text = host.read_optional("proc/self/mountinfo", limit=16 << 20)
        mounts = parse_mountinfo(text) if text is not None else {}
        if text is None:
            text = host.read_optional("proc/self/mounts", limit=16 << 20)
            mounts = parse_mounts(text) if text is not None else {}
        if text is None and mounts_read:  # the read phase has read /proc/mounts already
            mounts = {m.target: ("", m.source) for m in mounts_fact or ()}
            if mounts_fact is None:
                problems.append("no /proc/self/mountinfo or /proc/mounts to read: the disks the host boots "
                                "from are unknown")
        elif text is None:
            text = host.read_optional("proc/mounts", limit=16 << 20)
            mounts = parse_mounts(text) if text is not None else {}
            if text is None:
                problems.append("no /proc/self/mountinfo to read: the disks the host boots from are unknown")
    except HostError as exc:
        problems.append(f"/{exc.rel}: {exc.reason}")
    for point in MOUNTS:
        if point in mounts:
            _block(host, *mounts[point], NAMES[point], need, problems)
    try:
        swaps = host.read_optional("proc/swaps")
        for source in parse_swaps(swaps or ""):
            if source.startswith("/dev/"):
                _block(host, "", source, "swap", need, problems)
            else:  # a swap file: the disk of the filesystem that holds it
                point = max((p for p in mounts if source.startswith(p.rstrip("/") + "/")), key=len, default=None)
                if point:
                    _block(host, *mounts[point], "swap", need, problems)
    except HostError as exc:
        problems.append(f"/{exc.rel}: {exc.reason}")
    try:
        route, route6 = host.read_optional("proc/net/route"), host.read_optional("proc/net/ipv6_route")
        if route is None and route6 is None:
            problems.append("no /proc/net/route to read: the default route's interface is unknown")
        for iface in parse_default_routes(route, route6):
            _net(host, iface, f"default route ({iface})", need, problems, 0)
    except HostError as exc:
        problems.append(f"/{exc.rel}: {exc.reason}")
    return HostNeeds({a: tuple(w) for a, w in needs.items()}, tuple(problems))


def _block(host, majmin: str, source: str, why: str, need, problems) -> None:
    target = None
    if majmin and not majmin.startswith("0:"):  # 0:N is an anonymous device (btrfs, overlay, tmpfs)
        target = host.readlink(f"sys/dev/block/{majmin}")
        if target is not None and source.startswith("/dev/") and "/" not in source[5:]:
            # the same link by name: a snapshot holds proc/mounts (names), never proc/self/mountinfo
            host.readlink(f"sys/class/block/{source[5:]}")
    if target is None and source.startswith("/dev/"):
        name = source[5:]
        if name.startswith("mapper/"):
            name = (host.readlink(f"dev/{name}") or "").rsplit("/", 1)[-1]
        if name and "/" not in name:
            target = host.readlink(f"sys/class/block/{name}") or _disk_of(host, name)
    if target is None:
        if source.startswith("/dev/") or majmin and not majmin.startswith("0:"):
            problems.append(f"{why}: {source or majmin} could not be followed to a device in /sys")
        return  # tmpfs, overlay, nfs: no local disk to keep
    _follow_block(host, target, why, need, problems, 0)


def _disk_of(host, name: str) -> str | None:
    """A partition a tree does not list, by its disk (nvme0n1p2 -> nvme0n1, sda2 -> sda)."""
    disk = name.rstrip("0123456789")
    if disk != name and disk.endswith("p") and disk[:-1][-1:].isascii() and digits(disk[-2:-1]):
        disk = disk[:-1]
    return host.readlink(f"sys/block/{disk}") if disk and disk != name else None


def _follow_block(host, target: str, why: str, need, problems, depth: int) -> None:
    address = pci_in(target)
    if address:
        need(address, why)
        return
    name = target.rstrip("/").rsplit("/", 1)[-1]
    slaves = host.listdir(f"sys/class/block/{name}/slaves") if depth < DEPTH else []
    if not slaves:
        problems.append(f"{why}: /dev/{name} is on no PCI device this tree shows "
                        f"(no /sys/class/block/{name}/slaves)")
    for slave in slaves:
        under = host.readlink(f"sys/class/block/{slave}")
        if under:
            _follow_block(host, under, why, need, problems, depth + 1)


def _net(host, iface: str, why: str, need, problems, depth: int) -> None:
    target = host.readlink(f"sys/class/net/{iface}")
    address = pci_in(target)
    if address:
        need(address, why)
        return
    lowers = [e[6:] for e in host.listdir(f"sys/class/net/{iface}") if e.startswith("lower_")] if depth < DEPTH else []
    if not lowers and target is None:
        problems.append(f"{why}: no /sys/class/net/{iface}")
    for lower in lowers:  # a bond, bridge or VLAN: the ports under it
        _net(host, lower, why, need, problems, depth + 1)
