"""The vfio section: PCI devices bound to vfio-pci now, and at every boot.

Now: each device of the named devices' IOMMU groups (but the PCI-to-PCI bridges vfio
lets stay) gets driver_override "vfio-pci", is unbound from its driver and reprobed
through /sys/bus/pci/drivers_probe, which then binds the override
(Documentation/ABI/testing/sysfs-bus-pci). Rollback clears the override, unbinds
vfio-pci and binds the driver each device had; it never unbinds another driver.
At boot: ``options vfio-pci ids=`` and ``softdep DRIVER pre: vfio-pci`` lines in kvmtune's
modprobe.d file, vfio-pci in a modules-load.d file, or, where a device the host keeps
shares the ids, a udev rule setting driver_override by address.
A group holding a device the host needs (its root, /boot, /var or swap disk, its default
route) or a device in use is refused (exit 4) before anything is written (tune.vfio_plan).
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.grammar_pci import PCI_ADDRESS, driver_name_problem, pci_dir_problem
from kvmtune.probe.vfio_bind import DRIVER, Binding, read_binding
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, OK, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind



def _address(value) -> bool:
    return isinstance(value, str) and PCI_ADDRESS.fullmatch(value) is not None


def _directory(value) -> bool:
    return isinstance(value, str) and len(value) < 512 and value.startswith("sys/")


@kind
class VfioBindChange(Change):
    """One PCI function's driver binding; before/after are probe.vfio_bind.Binding (None: gone)."""

    KIND, ORDER = "vfio-bind", 87
    FIELDS = (Field("address", _address, "a PCI address"), Field("dir", _directory, "a sysfs directory"))
    __slots__ = ("address", "dir")

    def __init__(self, address: str, directory: str, before, after, status=None, detail=""):
        self.address, self.dir = address, directory
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"vfio {self.address}")

    @staticmethod
    def equal(current, wanted) -> bool:
        return tuple(current or ()) == tuple(wanted or ())

    @classmethod
    def parse_identity(cls, record: dict) -> dict:
        identity = super().parse_identity(record)
        problem = pci_dir_problem(identity["dir"], identity["address"])
        if problem:
            raise ValueError(f"vfio-bind dir {identity['dir']!r:.80}: {problem}")
        return identity

    @staticmethod
    def parse_original(value):
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"driver", "override"}:
            raise ValueError("a vfio-bind original is {driver, override}")
        for name in value.values():
            if name is not None and (not isinstance(name, str) or driver_name_problem(name)):
                raise ValueError(f"vfio-bind original {name!r:.60} is not a driver name")
        return Binding(value["driver"], value["override"])

    def original(self):
        return None if self.before is None else self.before.to_json()

    def shown(self, value):
        if value is None:
            return None
        # short enough for an 80-column plan: "snd_hda_intel -> vfio-pci (override vfio-pci)"
        return (value.driver or "no driver") + (f" (override {value.override})" if value.override else "")

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [] if live else [(f"{self.dir}/driver_override", "pci")]  # a snapshot's file is replaced whole

    def execute(self, host, ctx) -> None:
        try:
            now = read_binding(host, self.dir)  # just before writing: another tool may have bound it
            if now is None:
                self.status, self.detail = FAILED, "the device or its driver_override is gone"
                return
            if self.equal(now, self.after):
                self.status, self.detail = OK, self.detail or "already bound"
                return
            (_bind if self.after.driver == DRIVER else _put_back)(host, self.address, self.dir, now, self.after)
            got = read_binding(host, self.dir)  # the kernel's answer, not the writes'
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        if not host.live:  # no kernel behind a snapshot: only driver_override shows the writes
            if got is None or got.override != self.after.override:
                self.status, self.detail = FAILED, f"driver_override reads back {got and got.override!r}"
                return
            self.status = CHANGED
            self.detail = "snapshot: driver_override written; no kernel here rebinds, the driver link stays as captured"
            return
        if not self.equal(got, self.after):
            self.status, self.detail = FAILED, f"the kernel left it with {self.shown(got)}"
            return
        self.status = CHANGED

    def undo(self, host) -> None:
        now = read_binding(host, self.dir)
        if now is not None and self.before is not None and not self.equal(now, self.before):
            _put_back(host, self.address, self.dir, now, self.before)

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        # None only where the device is gone; a refused read stops rollback (its record kept)
        return {"knobs": {key: read_binding(host, record["dir"]) for key, record in entries}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for key, record in entries:
            original, now = cls.parse_original(record["original"]), facts.knobs.get(key)
            if original is None:
                continue
            if now is None:  # removed since: nothing to put back
                warnings.append(f"vfio {record['address']}: the device is gone; nothing to rebind")
                out.append(cls(record["address"], record["dir"], None, None, detail="the device is gone"))
                continue
            change = cls(record["address"], record["dir"], now, original)
            foreign = _foreign(now, original)
            if foreign and not change.equal(now, original):
                change.status = BLOCKED
                change.detail = (f"not restored: {foreign}, which kvmtune did not set, so it is left as it is; "
                                 f"it had {change.shown(original)}")
            out.append(change)
        return out


def _foreign(now, original) -> str | None:
    """What rollback finds on a device that kvmtune did not put there (it undoes only its own)."""
    if now.driver not in (None, DRIVER, original.driver):
        return f"it is bound to {now.driver}"
    if now.override not in (DRIVER, original.override):
        return f"its driver_override is {now.override or 'cleared'}"
    return None


def _bind(host, address: str, directory: str, now, want) -> None:
    """driver_override first (the next probe consults it), then unbind, then reprobe."""
    host.write_pci(f"{directory}/driver_override", DRIVER)
    if now.driver is not None and now.driver != DRIVER:
        host.write_pci(f"sys/bus/pci/drivers/{now.driver}/unbind", address)
    if now.driver != DRIVER:
        host.write_pci("sys/bus/pci/drivers_probe", address)


def _put_back(host, address: str, directory: str, now, want) -> None:
    """The override as it was (an empty write clears it), vfio-pci unbound, the original
    driver bound by name: drivers_probe could pick vfio-pci again through an ids= option.
    Only what kvmtune set is undone: an override other than vfio-pci is left alone and no
    driver but vfio-pci is unbound, so a journal alone cannot take a device from the host."""
    if now.override == DRIVER and want.override != DRIVER:
        host.write_pci(f"{directory}/driver_override", want.override or "")
    if now.driver == DRIVER and want.driver != DRIVER:
        host.write_pci(f"sys/bus/pci/drivers/{DRIVER}/unbind", address)
        now = Binding(None, want.override)
    if now.driver is None and want.driver is not None and host.live:
        host.write_pci(f"sys/bus/pci/drivers/{want.driver}/bind", address)
