"""The vfio section on hosts built from the PCI fixture trees (tests/fixtures/vfio_trees.py):
what sysfs would get, in order; refusals (exit 4) before any write; bad input (exit 2);
``blocked`` where vfio-pci is missing; rollback byte for byte; the live kernel's path on a
model of sysfs's binding rules; and this VM, whose kernel has no vfio-pci."""

import json
import os
from pathlib import Path

import pytest

from kvmtune.host.writable import WritableHost
from kvmtune.probe.vfio_bind import Binding, device_dir
from kvmtune.tune.change import CHANGED, FAILED
from kvmtune.tune.engine import Context
from tests.fixtures.vfio_trees import vfio_host
from tests.support.treestate import tree_diff, tree_state

Z370, DERIVED, CX4 = "consumer-asrock-z370-gt1030", "derived-z370-nvme-in-gpu-group", "sriov-cx4lx-2pf-4vf"
X1 = "laptop-x1c10-real"
GPU, AUDIO, NVME = "0000:01:00.0", "0000:01:00.1", "0000:05:00.0"


def profile(tmp_path: Path, *entries: str, name: str = "vfio.yaml") -> str:
    path = tmp_path / name
    path.write_text("vfio:\n  devices:\n" + "".join(f'    - "{e}"\n' for e in entries))
    return str(path)


@pytest.fixture
def writes(monkeypatch):
    """Every PCI binding write the host layer passes on, in order: (path, value)."""
    seen = []
    real = WritableHost.write_pci

    def record(self, rel, value):
        seen.append((rel, value))
        return real(self, rel, value)
    monkeypatch.setattr(WritableHost, "write_pci", record)
    return seen


def test_the_gpu_and_its_audio_function_get_what_sysfs_would_get_in_order(tmp_path, run_cli, writes):
    root = vfio_host(tmp_path, Z370)
    original = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--json")
    assert code == 0, err
    bus = "sys/bus/pci/devices"
    # The GPU has no driver bound (the listing shows none): override, then probe. Its audio
    # function goes with it (group 2; the root port 00:01.0 is a bridge and stays).
    assert writes == [(f"{bus}/{GPU}/driver_override", "vfio-pci"), ("sys/bus/pci/drivers_probe", GPU),
                      (f"{bus}/{AUDIO}/driver_override", "vfio-pci"),
                      ("sys/bus/pci/drivers/snd_hda_intel/unbind", AUDIO), ("sys/bus/pci/drivers_probe", AUDIO)]
    assert Path(root, bus, AUDIO, "driver_override").read_text() == "vfio-pci\n"
    assert Path(root, "sys/bus/pci/drivers/snd_hda_intel/unbind").read_text() == ""  # write-only: nothing kept
    modprobe = Path(root, "etc/modprobe.d/kvmtune.conf").read_text()
    assert "options vfio-pci ids=10de:1d01,10de:0fb8\nsoftdep snd_hda_intel pre: vfio-pci\n" in modprobe
    assert "\nvfio-pci\n" in Path(root, "etc/modules-load.d/kvmtune-vfio.conf").read_text()
    assert not Path(root, "etc/udev/rules.d/70-kvmtune-vfio.rules").exists()  # the ids are the guest's alone
    del writes[:]
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert writes == [(f"{bus}/{GPU}/driver_override", ""), (f"{bus}/{AUDIO}/driver_override", "")]
    now = tree_state(root)
    assert now == original, tree_diff(original, now)


def test_the_boot_nvme_in_the_gpu_group_is_refused_naming_both(tmp_path, run_cli, writes):
    root = vfio_host(tmp_path, DERIVED)
    original = tree_state(root)
    for entry in (GPU, "10de:0fb8"):  # the GPU, or its audio function by ids
        code, out, err = run_cli("--root", root, "apply", profile(tmp_path, entry))
        assert code == 4, (entry, code, err)
        assert "05:00.0, the NVMe that holds root filesystem" in err and "group 2" in err, err
        assert ("01:00.0" if entry == GPU else "01:00.1") in err and "nothing was changed" in err, err
    assert writes == [] and tree_state(root) == original


def test_the_refusal_is_what_stops_it(tmp_path, run_cli, monkeypatch):
    """Without the host-needed refusal the same apply would bind the NVMe that holds /: the
    test above fails when the refusal is removed."""
    import kvmtune.tune.vfio_plan as vfio_plan

    root = vfio_host(tmp_path, DERIVED)
    monkeypatch.setattr(vfio_plan, "_refuse", lambda f, taken: None)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--json")
    assert code == 0, err
    bound = [c["target"] for c in json.loads(out)["changes"] if c["target"].startswith("vfio ")]
    assert f"vfio {NVME}" in bound


def test_a_device_in_use_is_refused(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370)
    os.makedirs(Path(root, "sys/bus/pci/devices", AUDIO, "net/eth9"))  # added: an interface that is up
    Path(root, "sys/bus/pci/devices", AUDIO, "net/eth9/operstate").write_text("up\n")
    original = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU))
    assert code == 4 and "01:00.1 (in its IOMMU group 2) is in use: network interface eth9, which is up" in err, err
    assert tree_state(root) == original


@pytest.mark.parametrize("entry", ["0000:01:00.7", "10de:9999", "0001:01:00.0"])
def test_an_unknown_device_is_bad_input_naming_the_line(tmp_path, run_cli, entry):
    root = vfio_host(tmp_path, Z370)
    original = tree_state(root)
    path = profile(tmp_path, entry)
    code, out, err = run_cli("--root", root, "apply", path)
    assert code == 2 and f"{path}:3:7: vfio.devices[0]: no PCI device {entry}" in err, err
    assert tree_state(root) == original


@pytest.mark.parametrize("text, says", [
    ('vfio:\n  devices: ["01:00.0"]\n', "expected a full PCI address"),
    ('vfio:\n  devices: ["0000:01:00.0 "]\n', "expected a full PCI address"),
    ('vfio:\n  devices: ["0000:01:20.0"]\n', "expected a full PCI address"),  # device numbers end at 1f
    ('vfio:\n  devices: ["10de:1d0"]\n', "expected a full PCI address"),
    ('vfio:\n  devices: ["10de:1d01", "10DE:1D01"]\n', "listed twice"),
    ('vfio:\n  devices: []\n', "expected a list"),
    ('vfio:\n  devices: "0000:01:00.0"\n', "expected a list"),
    ('vfio:\n  device: ["0000:01:00.0"]\n', "did you mean 'devices'"),
    ('vfio:\n  devices: [0000:01:00.0]\n', "quote it"),
    ('vfio:\n  devices: [12]\n', "expected a quoted PCI address"),
])
def test_the_entries_are_held_to_a_strict_grammar(tmp_path, run_cli, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = run_cli("apply", str(path), "--check")
    assert code == 2 and says in err and f"{path}:" in err, err


def test_a_bridge_is_not_a_device_to_pass(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, "0000:00:01.0"), "--check")
    assert code == 2 and "PCI-to-PCI bridge" in err, err


def test_without_vfio_pci_the_boot_files_are_written_and_the_binding_is_blocked(tmp_path, run_cli, writes):
    root = vfio_host(tmp_path, Z370, vfio=False)
    original = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--json")
    assert code == 0, err
    changes = {c["target"]: c for c in json.loads(out)["changes"]}
    for address in (GPU, AUDIO):
        assert changes[f"vfio {address}"]["status"] == "blocked"
        assert "has no vfio-pci" in changes[f"vfio {address}"]["detail"]
        assert "/lib/modules/6.8.0-49-generic" in changes[f"vfio {address}"]["detail"]
    assert changes["/etc/modules-load.d/kvmtune-vfio.conf"]["status"] == "pending-reboot"
    assert writes == []
    code, out, err = run_cli("--root", root, "rollback")
    assert code == 0 and tree_state(root) == original
    # --no-persist: nothing is left to do
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--no-persist")
    assert code == 4 and "nothing is left to do" in err and tree_state(root) == original, err


def test_a_module_not_loaded_is_named(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370, vfio=False)
    ko = Path(root, "lib/modules/6.8.0-49-generic/kernel/drivers/vfio/pci/vfio-pci.ko.zst")
    ko.parent.mkdir(parents=True)
    ko.write_text("")
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--check", "--json")
    assert code == 0
    detail = next(c["detail"] for c in json.loads(out)["changes"] if c["target"] == f"vfio {GPU}")
    assert "'modprobe vfio-pci'" in detail


def test_ids_shared_with_a_kept_device_bind_by_address_in_a_udev_rule(tmp_path, run_cli):
    """Two VFs share 15b3:1016: taking one, ids= would take both; a rule keyed by address instead."""
    root = vfio_host(tmp_path, CX4)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, "0000:08:00.2"), "--json")
    assert code == 0, err
    rules = Path(root, "etc/udev/rules.d/70-kvmtune-vfio.rules").read_text()
    assert 'SUBSYSTEM=="pci", KERNEL=="0000:08:00.2", ATTR{driver_override}="vfio-pci"\n' in rules
    assert "08:00.3" not in rules
    modprobe = Path(root, "etc/modprobe.d/kvmtune.conf").read_text()
    assert "ids=" not in modprobe and "softdep mlx5_core pre: vfio-pci" in modprobe
    status = {c["target"]: c for c in json.loads(out)["changes"]}["vfio 0000:08:00.2"]
    assert status["status"] == "blocked" and "no IOMMU group" in status["detail"]  # the listing shows none


def test_a_real_tree_is_written_through_the_device_directory_never_the_bus_link(tmp_path):
    root = vfio_host(tmp_path, X1)
    host = WritableHost(root)
    nvme = "0000:04:00.0"
    assert device_dir(host, nvme) == f"sys/devices/pci0000:00/0000:00:06.0/{nvme}"
    from kvmtune.errors import HostError

    with pytest.raises(HostError, match="symbolic link"):
        host.write_pci(f"sys/bus/pci/devices/{nvme}/driver_override", "vfio-pci")
    for rel in ("sys/bus/pci/drivers/../unbind", "sys/class/net/eth0/driver_override",
                "sys/bus/pci/drivers/nvme/new_id", "sys/devices/pci0000:00/0000:00:06.0/config"):
        with pytest.raises((HostError, ValueError)):
            host.write_pci(rel, "x")


def test_a_journal_record_names_a_device_directory_of_its_own_address():
    from kvmtune.tune.registry import check_record

    good = {"type": "vfio-bind", "address": GPU, "dir": f"sys/devices/pci0000:00/0000:00:01.0/{GPU}",
            "original": {"driver": "nouveau", "override": None}}
    check_record(f"vfio-bind:{GPU}:{good['dir']}", good)
    for bad in ({"dir": f"sys/devices/pci0000:00/0000:00:01.0/{NVME}"}, {"dir": "etc/passwd"},
                {"original": {"driver": "../x", "override": None}}, {"address": "0000:01:00.0\n"}):
        record = {**good, **bad}
        with pytest.raises(ValueError):
            check_record(f"vfio-bind:{record['address']}:{record['dir']}", record)


class Sysfs:
    """The live kernel's binding rules, as a model (drivers/base/bus.c, drivers/pci/pci-driver.c):
    unbind releases a device from that driver; drivers_probe binds an unbound device to its
    driver_override or, with none set, to its native driver; bind binds an unbound device
    to that driver only if the override allows it."""

    live = True

    def __init__(self, native: dict, vfio_can_bind: bool = True):
        self.native, self.can = native, vfio_can_bind
        self.driver = dict(native)
        self.override = {a: None for a in native}
        self.writes = []

    def _address(self, rel):
        return rel.split("/")[-2]

    def read_optional(self, rel, limit=0):
        o = self.override[self._address(rel)]
        return f"{o or '(null)'}\n"

    def readlink(self, rel):
        d = self.driver[self._address(rel)]
        return None if d is None else f"../../../bus/pci/drivers/{d}"

    def write_pci(self, rel, value):
        self.writes.append((rel.split("/")[-1] if "drivers/" not in rel else rel[len("sys/bus/pci/"):], value))
        if rel.endswith("driver_override"):
            self.override[self._address(rel)] = value or None
        elif rel.endswith("/unbind") and self.driver[value] == rel.split("/")[-2]:
            self.driver[value] = None
        elif rel.endswith("drivers_probe") and self.driver[value] is None:
            want = self.override[value] or self.native[value]
            self.driver[value] = None if want == "vfio-pci" and not self.can else want
        elif rel.endswith("/bind") and self.driver[value] is None and self.override[value] in (None, rel.split("/")[-2]):
            self.driver[value] = rel.split("/")[-2]


DIR = f"sys/devices/pci0000:00/0000:00:01.0/{AUDIO}"


def test_on_a_live_kernel_the_device_is_bound_and_rollback_binds_its_driver_back():
    from kvmtune.tune.vfio import VfioBindChange

    kernel = Sysfs({AUDIO: "snd_hda_intel"})
    bind = VfioBindChange(AUDIO, DIR, Binding("snd_hda_intel", None), Binding("vfio-pci", "vfio-pci"))
    bind.execute(kernel, Context())
    assert bind.status == CHANGED and kernel.driver[AUDIO] == "vfio-pci", bind.detail
    kernel.writes.clear()
    back = VfioBindChange(AUDIO, DIR, Binding("vfio-pci", "vfio-pci"), Binding("snd_hda_intel", None))
    back.execute(kernel, Context())
    assert back.status == CHANGED, back.detail
    assert kernel.writes == [("driver_override", ""), ("drivers/vfio-pci/unbind", AUDIO),
                             ("drivers/snd_hda_intel/bind", AUDIO)]
    assert (kernel.driver[AUDIO], kernel.override[AUDIO]) == ("snd_hda_intel", None)


def test_a_binding_the_kernel_refuses_fails_and_its_undo_gives_the_device_back():
    from kvmtune.tune.vfio import VfioBindChange

    kernel = Sysfs({AUDIO: "snd_hda_intel"}, vfio_can_bind=False)  # vfio-pci's probe refuses it
    bind = VfioBindChange(AUDIO, DIR, Binding("snd_hda_intel", None), Binding("vfio-pci", "vfio-pci"))
    bind.execute(kernel, Context())
    assert bind.status == FAILED and "left it with no driver (override vfio-pci)" in bind.detail
    bind.undo(kernel)
    assert (kernel.driver[AUDIO], kernel.override[AUDIO]) == ("snd_hda_intel", None)


def test_rollback_never_takes_a_device_from_another_driver():
    """A journal alone may not unbind the host's driver: only vfio-pci is ever unbound."""
    from kvmtune.tune.vfio import VfioBindChange

    kernel = Sysfs({AUDIO: "nouveau"})
    back = VfioBindChange(AUDIO, DIR, Binding("nouveau", None), Binding("snd_hda_intel", None))
    back.execute(kernel, Context())
    assert kernel.writes == [] and kernel.driver[AUDIO] == "nouveau"
    # nor set an override kvmtune did not set: only a "vfio-pci" one is put back
    back = VfioBindChange(AUDIO, DIR, Binding("nouveau", None), Binding("nouveau", "pci-stub"))
    back.execute(kernel, Context())
    assert kernel.writes == [] and kernel.override[AUDIO] is None


LIVE_DIRS = ("/etc/modprobe.d", "/etc/modules-load.d", "/etc/udev/rules.d", "/var/lib/kvmtune")


def _live_device() -> tuple[str | None, str]:
    """A function of this machine the host does not need (and why there is none)."""
    from kvmtune.host.door import Host
    from kvmtune.probe.pci import read_pci
    from kvmtune.probe.pci_needs import read_host_needs
    from kvmtune.probe.vfio_bind import ABSENT, read_vfio_pci

    host = Host("/")
    if os.geteuid() != 0:
        return None, "needs root"
    if read_vfio_pci(host)[0] != ABSENT:
        return None, "this kernel has vfio-pci: the live test would bind a device for real"
    if os.path.exists("/var/lib/kvmtune/state.json"):
        return None, "another apply's journal is on this host"
    needs = read_host_needs(host)
    spare = [f.address for f in read_pci(host).functions
             if f.driver and not f.is_bridge and f.class16 != 0x0600 and f.address not in needs.needs
             and not os.listdir(f"/sys/bus/pci/devices/{f.address}").count("net")]
    return (spare[0], "") if spare else (None, "no PCI function the host does not need")


def _live_state(address: str) -> dict:
    state = {d: tree_state(d) if os.path.exists(d) else None for d in LIVE_DIRS}
    state["override"] = Path(f"/sys/bus/pci/devices/{address}/driver_override").read_text()
    state["driver"] = os.readlink(f"/sys/bus/pci/devices/{address}/driver")
    return state


@pytest.mark.live
def test_on_this_vm_the_binding_is_blocked_never_a_failure_and_rolls_back_exactly(tmp_path, run_cli):
    """This kernel has no vfio-pci (not built in, no /lib/modules): apply writes the boot
    files, says the binding is blocked and why, exits 0 (4 with --no-persist), never 1."""
    address, why = _live_device()
    if address is None:
        pytest.skip(why)
    before = _live_state(address)
    path = profile(tmp_path, address)
    try:
        code, out, err = run_cli("apply", path, "--no-persist")
        assert code == 4 and "has no vfio-pci" in err and "nothing was changed" in err, (code, err)
        assert _live_state(address) == before
        code, out, err = run_cli("apply", path, "--json")
        assert code == 0, (code, err)
        changes = {c["target"]: c for c in json.loads(out)["changes"]}
        bind = changes[f"vfio {address}"]
        assert bind["status"] == "blocked" and "has no vfio-pci" in bind["detail"], bind
        assert changes["/etc/modules-load.d/kvmtune-vfio.conf"]["status"] == "pending-reboot"
        assert Path(f"/sys/bus/pci/devices/{address}/driver_override").read_text() == before["override"]
        code, out, err = run_cli("rollback", "--json")
        assert code == 0, err
    finally:
        if _live_state(address) != before:
            run_cli("rollback")
    now = _live_state(address)
    assert now == before, {k: tree_diff(before[k] or {}, now[k] or {}) for k in LIVE_DIRS if now[k] != before[k]}


def test_a_group_is_not_bound_while_what_the_host_needs_is_unknown(tmp_path, run_cli):
    """The laptop's root is on LUKS, and the capture has no slaves/ to follow it to a disk."""
    root = vfio_host(tmp_path, X1)
    original = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, "0000:00:02.0"))
    assert code == 4 and "without knowing what the host needs" in err and "root filesystem" in err, err
    assert tree_state(root) == original


def test_once_bound_the_softdep_names_the_driver_the_journal_kept():
    """A second apply sees vfio-pci bound: the softdep still names the device's own driver."""
    from kvmtune.pci import binding_lines
    from kvmtune.probe.pci import read_pci
    from tests.test_pci import PCI

    pci = read_pci(WritableHost(str(PCI / Z370)))
    first = binding_lines(pci, [GPU, AUDIO])
    bound = pci._replace(functions=tuple(f._replace(driver="vfio-pci") if f.address == AUDIO else f
                                         for f in pci.functions))
    assert binding_lines(bound, [GPU, AUDIO], {AUDIO: "snd_hda_intel"}) == first
    assert "softdep snd_hda_intel pre: vfio-pci" in first[0]


def test_a_second_apply_changes_nothing_and_verify_finds_no_drift(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370)
    path = profile(tmp_path, GPU)
    assert run_cli("--root", root, "apply", path)[0] == 0
    code, out, err = run_cli("--root", root, "apply", path, "--json")
    assert code == 0 and json.loads(out)["changed"] is False, out
    code, out, err = run_cli("--root", root, "verify", path)
    assert code == 0, out


def test_rollback_leaves_a_binding_it_did_not_make_blocked_and_kept():
    from kvmtune.tune.facts import TuneFacts
    from kvmtune.tune.vfio import VfioBindChange

    key = f"vfio-bind:{AUDIO}:{DIR}"
    record = {"type": "vfio-bind", "address": AUDIO, "dir": DIR,
              "original": {"driver": "snd_hda_intel", "override": None}}
    for now, says in ((Binding("nouveau", None), "it is bound to nouveau"),
                      (Binding("vfio-pci", "pci-stub"), "its driver_override is pci-stub")):
        [change] = VfioBindChange.restore([(key, record)], TuneFacts(knobs={key: now}), [])
        assert change.status == "blocked" and says in change.detail, change.detail
    [change] = VfioBindChange.restore([(key, record)], TuneFacts(knobs={key: Binding("vfio-pci", "vfio-pci")}), [])
    assert change.status == "pending"


def test_a_capture_without_the_write_only_attributes_is_still_written_in_order(tmp_path, run_cli, writes):
    """'kvmtune snapshot' cannot read bind, unbind or drivers_probe (write-only): their writes
    are checked against their directory and consumed."""
    root = vfio_host(tmp_path, Z370)
    for rel in ("sys/bus/pci/drivers_probe", "sys/bus/pci/drivers/snd_hda_intel/unbind"):
        os.remove(Path(root, rel))
    original = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, "10de:0fb8"))
    assert code == 0, err
    bus = "sys/bus/pci/devices"
    assert writes == [(f"{bus}/{AUDIO}/driver_override", "vfio-pci"),  # named first, then its group
                      ("sys/bus/pci/drivers/snd_hda_intel/unbind", AUDIO), ("sys/bus/pci/drivers_probe", AUDIO),
                      (f"{bus}/{GPU}/driver_override", "vfio-pci"), ("sys/bus/pci/drivers_probe", GPU)]
    assert run_cli("--root", root, "rollback")[0] == 0 and tree_state(root) == original


def test_a_capture_that_did_not_look_for_vfio_pci_says_so(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370, vfio=False)
    manifest = Path(root, "kvmtune-snapshot.json")
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "captured_at": "2026-12-07T15:00:00Z",
                                    "absent": []}))
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--check", "--json")
    assert code == 0, err
    detail = next(c["detail"] for c in json.loads(out)["changes"] if c["target"] == f"vfio {GPU}")
    assert "did not capture /sys/bus/pci/drivers/vfio-pci" in detail, detail


def test_rollback_of_a_device_gone_since_says_so_and_forgets_it(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370)
    assert run_cli("--root", root, "apply", profile(tmp_path, GPU))[0] == 0
    os.remove(Path(root, "sys/bus/pci/devices", AUDIO, "driver_override"))  # as if it was unplugged
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0 and f"vfio {AUDIO}: the device is gone" in " ".join(json.loads(out)["warnings"]), out
    assert not Path(root, "var/lib/kvmtune/state.json").exists()


def test_the_boot_gpu_is_named_in_a_warning(tmp_path, run_cli):
    root = vfio_host(tmp_path, Z370)
    Path(root, "sys/bus/pci/devices", GPU, "boot_vga").write_text("1\n")  # added: the console's GPU
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, GPU), "--check", "--json")
    assert code == 0 and any("01:00.0 is the GPU the firmware booted on" in w for w in json.loads(out)["warnings"])
