"""The iommu and sriov profile sections: on snapshots of the SR-IOV fixture trees (tests/fixtures/pci),
apply writes what sysfs would get, verify reads it back, rollback puts every byte back; bad input
exits 2 with nothing changed. The sysfs of a snapshot is plain files, so a test that needs the
kernel's answers (EBUSY for a count changed between two non-zero ones, a driver that makes
fewer VFs) puts a small model of them in Host.write.
"""

from __future__ import annotations

import errno
import json

import pytest

from kvmtune.errors import HostError
from kvmtune.host.writable import WritableHost as Host
from tests.support.treestate import tree_diff, tree_state
from tests.test_pci import PCI

CX4 = "sriov-cx4lx-2pf-4vf"  # 08:00.0: 2 of 8 VFs (netdev enp8s0f0np0); 08:00.1: 2 VFs, totalvfs not captured
X722 = "sriov-x722-pf-real"  # 60:00.0 and 60:00.1: 0 of 64 VFs
# Added by these tests, not by the capture: the hwloc dump behind the X722 tree is of a
# 2x Xeon Silver 4108 host (tests/fixtures/pci/SOURCES.md), so its CPU vendor is Intel;
# a BLS entry, so the kernel arguments have a boot loader to go to.
CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\n\n"
BLS = "title Linux\nlinux /vmlinuz\noptions root=/dev/sda1 ro\n"


def snapshot(run_cli, tmp_path, name: str, autoprobe: bool = False) -> str:
    """A ``kvmtune snapshot`` of a PCI fixture tree, with a CPU vendor and a boot entry; with
    autoprobe, each PF gets the sriov_drivers_autoprobe file at the kernel's default, 1
    (Documentation/ABI/testing/sysfs-bus-pci), which neither capture holds."""
    out = tmp_path / "snap"
    code, _, err = run_cli("--root", str(PCI / name), "snapshot", str(out))
    assert code == 0, err
    (out / "proc").mkdir(exist_ok=True)
    (out / "proc" / "cpuinfo").write_text(CPUINFO)
    (out / "boot" / "loader" / "entries").mkdir(parents=True, exist_ok=True)
    (out / "boot" / "loader" / "entries" / "a.conf").write_text(BLS)
    if autoprobe:
        for pf in (out / "sys" / "bus" / "pci" / "devices").iterdir():
            if (pf / "sriov_numvfs").exists():
                (pf / "sriov_drivers_autoprobe").write_text("1\n")
    return str(out)


def profile(tmp_path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def kernel_like(monkeypatch, *, keeps_count: bool = False) -> list:
    """Host.write of sriov_numvfs as the kernel answers it (drivers/pci/iov.c): EBUSY for a new
    non-zero count while VFs exist; with keeps_count, a driver that creates no VF at all.
    Returns the writes, in order: (file, value)."""
    writes = []
    real = Host.write

    def write(self, rel, value):
        if rel.endswith("/sriov_numvfs"):
            current = self.read(rel).strip()
            if current != "0" and value.strip() not in ("0", current):
                raise HostError(rel, "Device or resource busy", errno.EBUSY)
            writes.append((rel.rsplit("/", 2)[-2], value.strip()))
            if keeps_count and value.strip() != "0":
                return
        elif rel.endswith("/sriov_drivers_autoprobe"):
            writes.append((rel.rsplit("/", 2)[-2] + " autoprobe", value.strip()))
        real(self, rel, value)

    monkeypatch.setattr(Host, "write", write)
    return writes


def test_a_new_count_on_a_pf_with_vfs_writes_0_then_the_count_and_rollback_restores_every_byte(
        run_cli, tmp_path, monkeypatch):
    root = snapshot(run_cli, tmp_path, CX4)
    original = tree_state(root)
    writes = kernel_like(monkeypatch)
    p = profile(tmp_path, 'sriov:\n  "0000:08:00.0": {numvfs: 4}\n')
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code == 0, (out, err)
    assert writes == [("0000:08:00.0", "0"), ("0000:08:00.0", "4")]
    bus = f"{root}/sys/bus/pci/devices/0000:08:00.0"
    assert open(f"{bus}/sriov_numvfs").read() == "4\n"
    rule = open(f"{root}/etc/udev/rules.d/70-kvmtune-sriov.rules").read()
    assert ('ACTION=="add|bind", SUBSYSTEM=="pci", KERNEL=="0000:08:00.0", ATTR{sriov_numvfs}="4"\n') in rule
    code, out, _ = run_cli("--root", root, "verify", p, "--json")
    assert code == 0 and json.loads(out)["drift"] == []
    code, out, _ = run_cli("--root", root, "apply", p, "--json")
    assert json.loads(out)["changed"] is False
    writes.clear()
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert writes == [("0000:08:00.0", "0"), ("0000:08:00.0", "2")]
    assert tree_state(root) == original, tree_diff(original, tree_state(root))


def test_a_pf_without_vfs_gets_its_count_at_once_and_autoprobe_before_it(run_cli, tmp_path, monkeypatch):
    root = snapshot(run_cli, tmp_path, X722, autoprobe=True)
    original = tree_state(root)
    writes = kernel_like(monkeypatch)
    p = profile(tmp_path, "sriov:\n  enp96s0f1: {numvfs: 16, autoprobe: false}\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code == 0, (out, err)
    assert writes == [("0000:60:00.1 autoprobe", "0"), ("0000:60:00.1", "16")]
    rule = open(f"{root}/etc/udev/rules.d/70-kvmtune-sriov.rules").read()
    assert ('KERNEL=="0000:60:00.1", ATTR{sriov_drivers_autoprobe}="0", ATTR{sriov_numvfs}="16"\n') in rule
    code, _, _ = run_cli("--root", root, "rollback", "--json")
    assert code == 0 and tree_state(root) == original, tree_diff(original, tree_state(root))


def test_a_count_the_kernel_does_not_keep_fails_and_is_undone(run_cli, tmp_path, monkeypatch):
    """The read-back: the driver made no VF although the write returned; without reading the
    count back, apply would report it changed."""
    root = snapshot(run_cli, tmp_path, X722)
    original = tree_state(root)
    kernel_like(monkeypatch, keeps_count=True)
    p = profile(tmp_path, 'sriov:\n  "0000:60:00.0": {numvfs: 8}\n')
    code, out, _ = run_cli("--root", root, "apply", p, "--json")
    report = json.loads(out)
    assert code == 1 and report["failed"], report
    failed = next(c for c in report["changes"] if c["target"] == "sriov 0000:60:00.0 numvfs")
    assert failed["status"] == "failed" and "wrote 8, the kernel kept 0" in failed["detail"]
    assert tree_state(root) == original, tree_diff(original, tree_state(root))


@pytest.mark.parametrize("text, where, says", [
    ('sriov:\n  "0000:08:00.0": {numvfs: 9}\n', ":2:", "offers at most 8 VFs"),
    ('sriov:\n  "0000:08:00.2": {numvfs: 1}\n', ":2:", "not an SR-IOV PF"),  # a VF
    ('sriov:\n  "0000:08:00.1": {numvfs: 1}\n', ":2:", "not an SR-IOV PF"),  # totalvfs not captured
    ('sriov:\n  "0000:09:00.0": {numvfs: 1}\n', ":2:", "no PCI function"),
    ("sriov:\n  eth9: {numvfs: 1}\n", ":2:", "no PCI function has the network interface 'eth9'"),
    ('sriov:\n  "0000:08:00.0": {numvfs: 2}\n  enp8s0f0np0: {numvfs: 2}\n', ":3:", "name a PF once"),
    ('sriov:\n  "0000:08:00.0": {numvfs: -1}\n', ":2:", "out of range"),
    ('sriov:\n  "0000:08:00.0": {count: 2}\n', ":2:", "unknown key 'count'"),
    ('sriov:\n  "0000:08:00.0": {autoprobe: 1}\n', ":2:", "expected true or false"),
    ('sriov:\n  "0000:08:00.0": {autoprobe: true}\n', ":2:", "no sriov_drivers_autoprobe"),
    ("sriov:\n  ../etc: {numvfs: 1}\n", ":2:", "expected a PF's PCI address"),
    ("iommu: {mode: passthrough}\n", ":1:", "iommu.mode: unknown IOMMU mode 'passthrough'"),
    ("iommu: {strict: true}\n", ":1:", "unknown key 'strict'"),
    ("iommu: {}\n", ":1:", "expected mode"),
])
def test_bad_input_exits_2_naming_file_line_and_key_and_changes_nothing(run_cli, tmp_path, text, where, says):
    root = snapshot(run_cli, tmp_path, CX4)
    original = tree_state(root)
    p = profile(tmp_path, text)
    code, out, err = run_cli("--root", root, "apply", p)
    assert code == 2 and f"{p}{where}" in err and says in err, (code, err)
    assert tree_state(root) == original


def _iommu_tree(run_cli, tmp_path, cmdline: str, group_type: str | None) -> str:
    root = snapshot(run_cli, tmp_path, X722)
    (tmp_path / "snap" / "proc" / "cmdline").write_text(cmdline + "\n")
    if group_type:
        group = tmp_path / "snap" / "sys" / "kernel" / "iommu_groups" / "7"
        group.mkdir(parents=True)
        (group / "type").write_text(group_type + "\n")
    return root


def test_the_iommu_mode_goes_into_the_boot_entry_pending_reboot_and_rolls_back(run_cli, tmp_path):
    root = _iommu_tree(run_cli, tmp_path, "BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro", None)
    original = tree_state(root)
    p = profile(tmp_path, "iommu: {mode: strict}\n")
    code, out, _ = run_cli("--root", root, "plan", p, "--json")
    assert code == 0 and tree_state(root) == original
    plan = {c["target"]: c for c in json.loads(out)["changes"]}
    assert plan["/boot/loader/entries/a.conf"]["status"] == "pending"
    code, out, _ = run_cli("--root", root, "apply", p, "--json")
    report = json.loads(out)
    assert code == 0 and report["reboot_required"], report
    entry = open(f"{root}/boot/loader/entries/a.conf").read()
    assert "options root=/dev/sda1 ro intel_iommu=on iommu.passthrough=0 iommu.strict=1\n" in entry
    mode = next(c for c in report["changes"] if c["target"] == "IOMMU mode (running kernel)")
    assert mode["status"] == "pending-reboot" and mode["before"].startswith("off")
    # The running kernel has not rebooted: verify says so; a second apply writes nothing.
    code, out, _ = run_cli("--root", root, "verify", p, "--json")
    assert code == 1 and [d["target"] for d in json.loads(out)["drift"]] == ["IOMMU mode (running kernel)"]
    code, out, _ = run_cli("--root", root, "apply", p, "--json")
    assert json.loads(out)["changed"] is False
    code, _, _ = run_cli("--root", root, "rollback", "--json")
    assert code == 0 and tree_state(root) == original, tree_diff(original, tree_state(root))


@pytest.mark.parametrize("cmdline, group_type, status", [
    ("ro intel_iommu=on iommu=pt", "identity", "ok"),
    ("ro intel_iommu=on,sm_on iommu=pt", "identity", "ok"),
    ("ro intel_iommu=on iommu=pt iommu=nopt", "DMA", "pending-reboot"),  # the last one counts
    ("ro intel_iommu=on iommu=pt", None, "blocked"),  # arguments given, but no IOMMU: the firmware
    ("ro", "identity", "pending-reboot"),
])
def test_verify_reads_the_command_line_and_the_default_domain_type(run_cli, tmp_path, cmdline, group_type, status):
    root = _iommu_tree(run_cli, tmp_path, cmdline, group_type)
    p = profile(tmp_path, "iommu: {mode: pt}\n")
    if status == "ok":
        entry = f"{root}/boot/loader/entries/a.conf"
        open(entry, "w").write(BLS.replace(" ro\n", " ro intel_iommu=on iommu=pt\n"))
    code, out, _ = run_cli("--root", root, "verify", p, "--json")
    mode = next(c for c in json.loads(out)["changes"] if c["target"] == "IOMMU mode (running kernel)")
    assert mode["status"] == status, mode
    assert code == (0 if status == "ok" else 1)


def test_kernel_arguments_by_vendor_and_mode():
    from kvmtune.tune.iommu import kernel_args

    assert kernel_args("pt", "intel") == ["intel_iommu=on", "iommu=pt"]
    # AMD: on unless amd_iommu=off; the kernel has no amd_iommu=on to write
    assert kernel_args("pt", "amd") == ["iommu=pt"]
    assert kernel_args("lazy", "amd") == ["iommu.passthrough=0", "iommu.strict=0"]
    assert kernel_args("strict", "intel") == ["intel_iommu=on", "iommu.passthrough=0", "iommu.strict=1"]
    assert kernel_args("pt", "other") == ["iommu.passthrough=1"]  # ARM64 documents only this form


def test_a_grub_host_gets_the_iommu_arguments_in_the_drop_in(run_cli, tmp_path):
    root = snapshot(run_cli, tmp_path, X722)
    snap = tmp_path / "snap"
    (snap / "proc" / "cpuinfo").write_text(CPUINFO.replace("GenuineIntel", "AuthenticAMD"))
    for d in ("boot/loader/entries/a.conf",):
        (snap / d).unlink()
    (snap / "etc" / "default").mkdir(parents=True, exist_ok=True)
    (snap / "etc" / "default" / "grub").write_text("GRUB_DEFAULT=0\n")
    (snap / "usr" / "sbin").mkdir(parents=True, exist_ok=True)
    (snap / "usr" / "sbin" / "update-grub").write_text("")
    original = tree_state(root)
    p = profile(tmp_path, "iommu: {mode: lazy}\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code == 0, err
    text = open(f"{root}/etc/default/grub.d/90-kvmtune.cfg").read()
    assert 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX iommu.passthrough=0 iommu.strict=0"\n' in text
    assert "amd_iommu" not in text
    code, _, _ = run_cli("--root", root, "rollback", "--json")
    assert code == 0 and tree_state(root) == original


@pytest.mark.live
def test_live_the_iommu_section_plans_without_changing_anything(run_cli, tmp_path):
    """This machine has no IOMMU and no boot loader kvmtune can edit: the plan says what the
    running kernel lacks and what to add, and writes nothing (check mode only)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root to read the whole host as apply would")
    p = profile(tmp_path, "iommu: {mode: pt}\n")
    code, out, err = run_cli("plan", p, "--json")
    assert code == 0, err
    report = json.loads(out)
    mode = next(c for c in report["changes"] if c["target"] == "IOMMU mode (running kernel)")
    assert mode["status"] in ("pending-reboot", "blocked", "ok") and mode["after"] == "pt"
    assert not report["changed"] or all(c["status"] in ("pending", "pending-reboot", "blocked", "ok")
                                        for c in report["changes"])


def test_no_persist_sets_the_count_now_and_says_what_a_reboot_loses(run_cli, tmp_path):
    root = snapshot(run_cli, tmp_path, X722)
    p = profile(tmp_path, 'iommu: {mode: pt}\nsriov:\n  "0000:60:00.0": {numvfs: 2}\n')
    code, out, _ = run_cli("--root", root, "apply", p, "--no-persist", "--json")
    report = json.loads(out)
    assert code == 0 and [c["target"] for c in report["changes"]] == ["sriov 0000:60:00.0 numvfs",
                                                                     "IOMMU mode (running kernel)"]
    assert report["changes"][1]["status"] == "blocked"
    assert any("udev rule is not written" in w for w in report["warnings"])
    assert any("iommu section's kernel arguments" in w for w in report["warnings"])
    assert not (tmp_path / "snap" / "etc" / "udev" / "rules.d" / "70-kvmtune-sriov.rules").exists()
    assert open(f"{root}/boot/loader/entries/a.conf").read() == BLS


@pytest.mark.parametrize("record, says", [
    ({"address": "../../../etc", "knob": "numvfs"}, "is not a PCI address"),
    ({"address": "0000:60:00.0", "knob": "remove"}, "is not an SR-IOV file kvmtune sets"),
])
def test_a_tampered_sriov_record_is_refused_before_anything_is_written(record, says):
    from kvmtune.tune.registry import check_record

    record = {"type": "sriov", **record, "original": "0"}
    with pytest.raises(ValueError, match=says):
        check_record(f"sriov:{record['address']}:{record['knob']}", record)


@pytest.mark.parametrize("rel, allowed", [
    ("sys/devices/pci0000:5d/0000:5d:02.0/0000:5e:00.0/0000:60:00.0/sriov_numvfs", True),
    ("sys/bus/pci/devices/0000:60:00.0/sriov_drivers_autoprobe", True),
    ("sys/bus/pci/devices/0000:60:00.0/remove", False),
    ("sys/bus/pci/devices/0000:60:00.0/driver/unbind", False),
    ("sys/devices/pci0000:5d/../../../etc/sriov_numvfs", False),
    ("sys/class/net/eth0/device/sriov_numvfs", False),  # through links: never written
])
def test_the_allow_list_takes_a_pfs_sriov_files_and_nothing_beside_them(rel, allowed):
    from kvmtune.host.owned import allows

    assert allows("knob", rel) is allowed


@pytest.mark.parametrize("vendor, line", [
    ("AuthenticAMD", "   iommu=pt\n"),
    ("GenuineIntel", "   intel_iommu=on iommu=pt\n"),
    (None, "   intel_iommu=on (on Intel; AMD's IOMMU is on unless amd_iommu=off) iommu=pt\n"),
])
def test_devices_steps_name_no_amd_iommu_on_which_the_kernel_lacks(run_cli, tmp_path, vendor, line):
    """The B550M board is an AMD one (SOURCES.md); its RTX 2070 functions share group 14 alone."""
    import shutil

    root = tmp_path / "b550m"
    shutil.copytree(PCI / "consumer-msi-b550m-noacs", root, symlinks=True)
    if vendor:
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc" / "cpuinfo").write_text(CPUINFO.replace("GenuineIntel", vendor))
    code, out, err = run_cli("--root", str(root), "devices", "0000:2b:00.0")
    assert line in out and "amd_iommu=on" not in out, out
