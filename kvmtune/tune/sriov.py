"""SR-IOV: a PF's VF count and VF driver autoprobe, now in sysfs and at boot in a udev rule.

Now: ``sriov_drivers_autoprobe`` first (it decides whether the VFs about to be created get a
host driver), then ``sriov_numvfs``. The kernel refuses to change a non-zero count to another
non-zero one (drivers/pci/iov.c, sriov_numvfs_store: "%d VFs already enabled. Disable before
enabling %d VFs", EBUSY), so a change between two non-zero counts writes 0 first; every count
is read back (Documentation/ABI/testing/sysfs-bus-pci: the driver may create fewer).

At boot: /etc/udev/rules.d/70-kvmtune-sriov.rules, keyed by the PF's PCI address (stable across
reboots, unlike netdev names or IOMMU group numbers). The kernel takes the count only from a
PF with its driver bound (ENOENT otherwise), so the rule runs on "add" (coldplug, when the
driver is already bound) and on "bind" (a driver that binds later): the VFs exist before
libvirtd, nova-compute or the network agents start.
"""

from __future__ import annotations

import posixpath

from kvmtune.grammar import digits, is_pci_address
from kvmtune.record import record
from kvmtune.tune.change import CHANGED, FAILED
from kvmtune.tune.knob import KnobChange
from kvmtune.tune.registry import Field, kind, one_of
from kvmtune.tune.sections import section

BUS = "sys/bus/pci/devices"
KNOBS = ("drivers_autoprobe", "numvfs")  # apply's order, and rollback's: autoprobe before the VFs appear
RULES_DETAIL = "SR-IOV at boot: udev sets each PF's VFs as the PF appears"


@record
class PfState:
    """One PF as the read phase found it (None fields: the file is absent)."""

    address: str
    dir: str  # its sysfs device directory, every component a real directory (writes follow no link)
    totalvfs: str | None
    numvfs: str | None
    autoprobe: str | None


@kind
class SriovChange(KnobChange):
    """sriov_numvfs or sriov_drivers_autoprobe of one PF, by its PCI address."""

    KIND, ORDER = "sriov", 75
    FIELDS = (Field("address", is_pci_address, "a PCI address"),
              Field("knob", one_of(KNOBS), "an SR-IOV file kvmtune sets"))
    __slots__ = ("address", "knob", "dir")

    def __init__(self, address: str, knob: str, before, after, status=None, detail="", dir: str | None = None):
        self.address, self.knob = address, knob
        self.dir = dir or f"{BUS}/{address}"
        super().__init__(before, after, status, detail)

    rel = property(lambda self: f"{self.dir}/sriov_{self.knob}")
    target = property(lambda self: f"sriov {self.address} {self.knob}")

    def write(self, host, ctx) -> None:
        current = self.read(host)
        if self.knob == "numvfs" and current not in (None, "0") and str(self.after) != "0":
            host.write(self.rel, "0")  # the kernel takes a new count only from 0 (EBUSY otherwise)
        host.write(self.rel, str(self.after))
        got = self.read(host)  # the driver's answer: it may have made fewer VFs, or none
        if not self.equal(got, self.after):
            self.status, self.detail = FAILED, f"wrote {self.after}, the kernel kept {got}"
            return
        self.status = CHANGED

    def undo(self, host) -> None:
        if self.before is None:
            return
        if self.knob == "numvfs" and self.read(host) not in (None, "0", str(self.before)) and str(self.before) != "0":
            host.write(self.rel, "0")
        host.write(self.rel, str(self.before))

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        pfs = {r["address"]: read_pf(host, r["address"]) for _, r in entries}
        knobs = {}
        for key, r in entries:
            pf = pfs[r["address"]]
            knobs[key] = None if pf is None else getattr(pf, "autoprobe" if r["knob"] == "drivers_autoprobe" else "numvfs")
        return {"knobs": knobs, "sriov": {a: pf for a, pf in pfs.items() if pf is not None}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for key, r in sorted(entries, key=lambda e: (e[1]["address"], KNOBS.index(e[1]["knob"]))):
            pf = facts.sriov.get(r["address"])
            if r["original"] is None:
                continue
            if pf is None:  # the device is gone (unplugged, or its PF driver unloaded): nothing to write
                warnings.append(f"sriov {r['address']}: the PF is gone, its {r['knob']} is not restored")
                continue
            out.append(cls(r["address"], r["knob"], facts.knobs.get(key), r["original"], dir=pf.dir))
        return out


def device_dir(host, address: str) -> str | None:
    """The PF's device directory: where the bus entry's link points (sys/devices/pci...), or, in a
    snapshot whose bus entries are plain directories, the bus entry itself; None if neither."""
    bus = f"{BUS}/{address}"
    target = host.readlink(bus)
    if target:
        resolved = posixpath.normpath(posixpath.join(BUS, target))
        if resolved.startswith("sys/devices/pci") and resolved.endswith("/" + address) \
                and host.kind(resolved) == "dir":
            return resolved
    return bus if host.kind(bus) == "dir" else None


def read_pf(host, address: str) -> PfState | None:
    from kvmtune.tune.facts import strip

    where = device_dir(host, address)
    if where is None:
        return None

    def text(name):
        return strip(host.read_optional(f"{where}/{name}"))

    return PfState(address, where, text("sriov_totalvfs"), text("sriov_numvfs"), text("sriov_drivers_autoprobe"))


def address_of(host, name: str) -> str | None:
    """A PF named by address or by one of its network interfaces -> its PCI address."""
    if is_pci_address(name):
        return name if host.exists(f"{BUS}/{name}") else None
    link = host.readlink(f"sys/class/net/{name}/device")
    if link and is_pci_address(posixpath.basename(link)):
        return posixpath.basename(link)
    # A tree without /sys/class/net (a capture of the PCI devices alone): their own net/ lists
    for address in host.listdir(BUS):
        if name in host.listdir(f"{BUS}/{address}/net"):
            return address
    return None


def plan_sriov(profile, facts, ctx) -> list:
    """The changes of every PF, autoprobe before its count; ProfileError (exit 2, nothing
    changed) for a PF that is not there, not an SR-IOV PF, or cannot take the count."""
    changes, rules, seen = [], [], {}
    for name, req in profile.sriov.items():
        pf = facts.sriov.get(name)
        where = "in this snapshot" if facts.capture is not None else "on this host"
        if pf is None:
            what = f"no PCI function {name}" if is_pci_address(name) else \
                f"no PCI function has the network interface {name!r}"
            raise req.src.key_error(f"{what} {where}")
        if pf.address in seen:
            raise req.src.key_error(f"{name} is {pf.address}, also named as {seen[pf.address]}: name a PF once")
        seen[pf.address] = name
        if pf.numvfs is None or pf.totalvfs is None:
            raise req.src.key_error(f"{pf.address} is not an SR-IOV PF (no sriov_totalvfs/sriov_numvfs {where}): "
                                    "only a physical function with the SR-IOV capability has VFs")
        total = int(pf.totalvfs) if digits(pf.totalvfs) else 0
        if req.numvfs is not None and req.numvfs > total:
            raise req.numvfs_src.error(f"{pf.address} offers at most {total} VFs (sriov_totalvfs), not {req.numvfs}")
        attrs = []
        if req.autoprobe is not None:
            wanted = "1" if req.autoprobe else "0"
            if pf.autoprobe is None:
                raise req.src.key_error(f"{pf.address} has no sriov_drivers_autoprobe {where} (Linux 4.12 added it)")
            changes.append(SriovChange(pf.address, "drivers_autoprobe", pf.autoprobe, wanted, dir=pf.dir,
                                       detail="VFs created from now on"))
            attrs.append(f'ATTR{{sriov_drivers_autoprobe}}="{wanted}"')
        if req.numvfs is not None:
            detail = "0 first, then the new count (the kernel changes a count only from 0)" \
                if pf.numvfs not in ("0", str(req.numvfs)) and req.numvfs else ""
            changes.append(SriovChange(pf.address, "numvfs", pf.numvfs, str(req.numvfs), dir=pf.dir, detail=detail))
            attrs.append(f'ATTR{{sriov_numvfs}}="{req.numvfs}"')
        rules.append(f'ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="{pf.address}", ' + ", ".join(attrs) + "\n")
    if ctx.persist:
        from kvmtune.tune.files import HEADER
        from kvmtune.tune.persist import own_file

        change = own_file(facts, "sriov", HEADER + "".join(sorted(rules)) if rules else None, RULES_DETAIL)
        if not (change.before is None and change.after is None):
            changes.append(change)
    elif profile.sriov:
        ctx.warnings.append("--no-persist: the SR-IOV udev rule is not written: the VFs are gone after a reboot")
    return changes


def _read(host, profile, persist: bool, out: dict) -> None:
    found = {}
    for name in profile.sriov:
        address = address_of(host, name)
        found[name] = read_pf(host, address) if address else None
    out["sriov"] = found


section("sriov", order=75, reads=_read, plan=plan_sriov)
