"""PCI facts, passthrough verdicts, the per-device checks and ``kvmtune devices``, on trees
built from real machines' captures (tests/fixtures/pci, see its SOURCES.md)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import tarfile
import tempfile
from pathlib import Path

import pytest

from kvmtune.host.door import Host
from kvmtune.pci import devices_json, verdict
from kvmtune.probe.pci import class16, kind_of, parse_acs, parse_header_type, read_pci
from kvmtune.probe.pci_needs import (parse_default_routes, parse_mountinfo, parse_swaps, pci_in,
                                     read_host_needs)
from kvmtune.probe.vfio import parse_irq_remapping

ARCHIVE = Path(__file__).parent / "fixtures" / "pci" / "trees.tar.xz"


def unpack_trees(into: Path) -> Path:
    """The trees, unpacked. They are kept as one archive: sysfs trees hold link cycles
    (driver/DEV/driver/...) and empty driver directories, which neither git nor an sdist
    (whose file list follows links) would keep as they are."""
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(into, filter="data")
    return into


with tarfile.open(ARCHIVE) as _tar:
    TREES = sorted({m.name.split("/", 1)[0] for m in _tar.getmembers()})
# Unpacked once for the module (read-only by convention: tests that write build their own).
PCI = unpack_trees(Path(tempfile.mkdtemp(prefix="kvmtune-pci-")))
atexit.register(shutil.rmtree, PCI, True)


def facts(name: str):
    host = Host(str(PCI / name))
    return read_pci(host), read_host_needs(host)


def v(name: str, address: str):
    pci, needs = facts(name)
    return verdict(pci, needs, address)


# --- parsers -------------------------------------------------------------------------------

def config_space(size: int, caps: list[int]) -> bytes:
    """A config space whose extended capability list holds ``caps`` (ids), linked from 0x100."""
    data = bytearray(size)
    data[0x0E] = 0x81  # multi-function, header type 1
    offset = 0x100
    for i, cap in enumerate(caps):
        nxt = offset + 0x10 if i + 1 < len(caps) else 0
        struct.pack_into("<I", data, offset, cap | (1 << 16) | (nxt << 20))
        offset = nxt
    return bytes(data)


def test_acs_is_found_in_the_extended_capability_list():
    assert parse_acs(config_space(4096, [0x0001, 0x000D])) is True
    assert parse_acs(config_space(4096, [0x0001, 0x000B])) is False
    assert parse_acs(config_space(4096, [])) is False


@pytest.mark.parametrize("size", [64, 256])
def test_acs_is_unknown_when_only_legacy_config_space_is_readable(size):
    assert parse_acs(bytes(size)) is None


def test_acs_loop_in_the_capability_list_ends():
    data = bytearray(4096)
    struct.pack_into("<I", data, 0x100, 0x0001 | (0x100 << 20))  # points at itself
    assert parse_acs(bytes(data)) is False


def test_header_type_drops_the_multifunction_bit():
    assert parse_header_type(config_space(64, [])) == 1
    assert parse_header_type(b"") is None


@pytest.mark.parametrize("code,kind", [("0x030000", "gpu"), ("0x030200", "gpu"), ("0x040300", "audio"),
                                       ("0x010802", "nvme"), ("0x010601", "storage"), ("0x020000", "ethernet"),
                                       ("0x0c0330", "usb"), ("0x060400", "bridge"), ("0x088000", "other"),
                                       (None, "other"), ("0x٣٠٠٠٠", "other")])
def test_kind_comes_from_the_top_16_bits_of_the_class(code, kind):
    assert kind_of(class16(code)) == kind


def test_mountinfo_gives_device_numbers_and_sources():
    text = ("22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
            "23 22 0:31 / /var\\040x rw - btrfs /dev/mapper/luks-1 rw\n")
    assert parse_mountinfo(text) == {"/": ("259:2", "/dev/nvme0n1p2"), "/var x": ("0:31", "/dev/mapper/luks-1")}


def test_default_routes_v4_and_v6():
    v4 = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
          "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
          "eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    v6 = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 "
          "00000400 00000001 00000000 00000003 bond0\n"
          "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 "
          "ffffffff 00000001 00000000 00200200 lo\n")
    assert parse_default_routes(v4, v6) == ("eth0", "bond0")
    assert parse_default_routes(None, None) == ()


def test_swaps_and_pci_in():
    assert parse_swaps("Filename Type Size Used Priority\n/dev/sda2 partition 1 0 -2\n") == ("/dev/sda2",)
    assert pci_in("../../devices/pci0000:00/0000:00:03.0/virtio2/net/eth0") == "0000:00:03.0"
    assert pci_in("../../devices/virtual/net/lo") is None


def test_interrupt_remapping_from_the_iommu_drivers_lines():
    assert parse_irq_remapping(["DMAR-IR: Enabled IRQ remapping in x2apic mode"]) == "on"
    assert parse_irq_remapping(["AMD-Vi: Interrupt remapping enabled"]) == "on"
    assert parse_irq_remapping(["DMAR-IR: IRQ remapping was disabled on this platform"]) == "off"
    assert parse_irq_remapping([]) == "unknown"


# --- facts and verdicts on the captures ----------------------------------------------------

def test_consumer_board_gpu_goes_with_its_audio_function():
    verdict_ = v("consumer-asrock-z370-gt1030", "0000:01:00.0")
    assert verdict_.verdict == "with-group"
    assert verdict_.with_ == ("0000:01:00.1",)  # the root port 00:01.0 is a bridge and may stay
    assert v("consumer-asrock-z370-gt1030", "0000:00:02.0").verdict == "alone"
    assert v("consumer-asrock-z370-gt1030", "0000:00:01.0").verdict == "never"  # a bridge itself


def test_board_without_acs_takes_the_chipset_along():
    verdict_ = v("consumer-msi-b550m-noacs", "0000:04:00.0")
    assert verdict_.verdict == "with-group"
    # no drivers in that listing: every endpoint counts as bound; the three bridges may stay
    assert set(verdict_.with_) == {"0000:02:00.0", "0000:02:00.1", "0000:04:00.1", "0000:2a:00.0"}
    assert "shows no drivers" in verdict_.reason


def test_server_has_one_function_per_group():
    pci, needs = facts("server-spr-aspeed-1fn-per-group")
    qat = [f for f in pci.functions if f.device == "0x4940"]
    assert qat and all(verdict(pci, needs, f.address).verdict == "alone" for f in qat)
    assert v("server-spr-aspeed-1fn-per-group", "0000:03:00.0").verdict == "alone"  # its bridge may stay


def test_boot_nvme_in_the_gpu_group_is_never():
    verdict_ = v("derived-z370-nvme-in-gpu-group", "0000:01:00.0")
    assert verdict_.verdict == "never"
    assert "05:00.0" in verdict_.reason and "root filesystem" in verdict_.reason
    assert v("derived-z370-nvme-in-gpu-group", "0000:05:00.0").verdict == "never"
    # the same GPU on the unchanged board is passable
    assert v("consumer-asrock-z370-gt1030", "0000:01:00.0").verdict == "with-group"


def test_root_on_luks_that_cannot_be_followed_says_so_and_boot_still_decides():
    pci, needs = facts("derived-x1c10-nvme-in-igpu-group")
    # / is on dm-0 (LUKS) and the dump has no slaves/: said, not guessed
    assert any(p.startswith("root filesystem:") for p in needs.problems)
    # /boot is nvme0n1p2, a partition the dump does not list: found through its disk
    assert needs.needs == {"0000:04:00.0": ("/boot",)}
    verdict_ = verdict(pci, needs, "0000:00:02.0")
    assert verdict_.verdict == "never" and "04:00.0, the NVMe that holds /boot" in verdict_.reason
    assert v("laptop-x1c10-real", "0000:00:02.0").verdict == "alone"


def test_sriov_pf_and_vfs():
    pci, _ = facts("sriov-cx4lx-2pf-4vf")
    pf = pci.get("0000:08:00.0")
    assert (pf.sriov.totalvfs, pf.sriov.numvfs, pf.sriov.vfs) == (8, 2, ("0000:08:00.2", "0000:08:00.3"))
    assert pf.netdevs == ("enp8s0f0np0",) and pf.driver == "mlx5_core" and pf.iommu_group == "27"
    assert pci.get("0000:08:00.2").physfn == "0000:08:00.0"


def test_real_x722_dump():
    pci, needs = facts("sriov-x722-pf-real")
    pf = pci.get("0000:60:00.0")
    assert (pf.sriov.totalvfs, pf.sriov.numvfs, pf.numa_node) == (64, 0, 0)
    assert pf.driver == "i40e"  # from the dangling driver link's name
    assert pf.driver_override is None  # "(null)"
    assert pf.kind == "ethernet" and pf.acs is None and pf.config_bytes == 64
    assert pf.parents == ("0000:5d:02.0", "0000:5e:00.0", "0000:5f:03.0")
    assert verdict(pci, needs, pf.address).verdict == "no-iommu"


@pytest.mark.parametrize("name", TREES)
def test_every_function_gets_one_of_the_four_verdicts(name):
    pci, needs = facts(name)
    report = devices_json(pci, needs)
    assert {d["address"] for d in report["devices"]} == {f.address for f in pci.functions}
    for d in report["devices"]:
        assert set(d) == {"address", "vendor", "device", "class", "kind", "driver", "iommu_group", "numa_node",
                          "sriov", "host_needs", "passthrough"}
        assert set(d["passthrough"]) == {"verdict", "with", "reason"}
        assert d["passthrough"]["verdict"] in ("alone", "with-group", "never", "no-iommu")
        assert len(d["address"]) == 12
    assert sorted(a for m in report["groups"].values() for a in m) == sorted(
        d["address"] for d in report["devices"] if d["iommu_group"] is not None)


# --- host needs on a built tree ------------------------------------------------------------

def link(root: Path, rel: str, target: str):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def write(root: Path, rel: str, text: str):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_host_needs_follow_device_numbers_device_mapper_swap_and_bonds(tmp_path):
    write(tmp_path, "proc/self/mountinfo",
          "1 0 253:0 / / rw - xfs /dev/mapper/root rw\n2 1 259:3 / /boot rw - ext4 /dev/nvme0n1p1 rw\n")
    link(tmp_path, "sys/dev/block/253:0", "../../devices/virtual/block/dm-0")
    link(tmp_path, "sys/dev/block/259:3", "../../devices/pci0000:00/0000:00:06.0/0000:04:00.0/nvme/nvme0/nvme0n1/nvme0n1p1")
    (tmp_path / "sys/class/block/dm-0/slaves/sda3").mkdir(parents=True)
    link(tmp_path, "sys/class/block/sda3", "../../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda3")
    write(tmp_path, "proc/swaps", "Filename Type Size Used Priority\n/dev/sdb1 partition 1 0 -2\n")
    link(tmp_path, "sys/class/block/sdb1", "../../devices/pci0000:00/0000:00:17.1/ata2/block/sdb/sdb1")
    write(tmp_path, "proc/net/route", "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
          "bond0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n")
    link(tmp_path, "sys/class/net/bond0", "../../devices/virtual/net/bond0")
    (tmp_path / "sys/devices/virtual/net/bond0/lower_eno1").mkdir(parents=True)
    link(tmp_path, "sys/class/net/eno1", "../../devices/pci0000:00/0000:03:00.0/net/eno1")
    needs = read_host_needs(Host(str(tmp_path)))
    assert needs.needs == {"0000:00:17.0": ("root filesystem",), "0000:04:00.0": ("/boot",),
                           "0000:00:17.1": ("swap",), "0000:03:00.0": ("default route (bond0)",)}
    assert needs.problems == ()


# --- checks and the command ----------------------------------------------------------------

def test_plain_check_reads_no_pci_device(tmp_path):
    from kvmtune.checks import read_phase, selected

    assert not {"iommu.groups", "pci.acs", "sriov"} & set(selected([], []))
    facts_ = read_phase(Host(str(PCI / "consumer-asrock-z370-gt1030")), [], [])
    assert "pci" not in facts_.names and "host_needs" not in facts_.names
    facts_ = read_phase(Host(str(PCI / "consumer-asrock-z370-gt1030")), ["iommu.groups"], [])
    assert "pci" in facts_.names


def test_check_names_the_gpu_and_the_nvme(check_json):
    code, report = check_json(PCI / "derived-z370-nvme-in-gpu-group", "--only", "iommu.groups")
    check = next(c for c in report["checks"] if c["id"] == "iommu.groups")
    assert check["status"] == "warn"
    assert "01:00.0" in check["detail"] and "05:00.0" in check["detail"] and "root filesystem" in check["detail"]
    assert check["data"]["verdicts"]["0000:01:00.0"]["verdict"] == "never"


def test_tree_with_devices_but_no_groups_fails_iommu_groups(check_json):
    code, report = check_json(PCI / "sriov-x722-pf-real", "--only", "iommu.groups,sriov")
    by = {c["id"]: c for c in report["checks"]}
    assert by["iommu.groups"]["status"] == "fail" and code == 1
    assert by["sriov"]["status"] == "warn" and "0 of 64" in by["sriov"]["detail"]
    assert "0000:60:00.0" in by["sriov"]["hint"]


def test_sriov_with_vfs_passes_only_when_a_udev_rule_keeps_them(tmp_path, check_json):
    root = tmp_path / "t"
    shutil.copytree(PCI / "sriov-cx4lx-2pf-4vf", root, symlinks=True)

    def sriov():
        _, report = check_json(root, "--only", "sriov")
        return next(c for c in report["checks"] if c["id"] == "sriov")

    got = sriov()  # VFs now, nothing sets them at boot
    assert got["status"] == "warn" and "2 of 8" in got["detail"] and "gone after a reboot" in got["detail"]
    assert 'ACTION=="add|bind"' in got["hint"]
    lib = root / "usr/lib/udev/rules.d"
    lib.mkdir(parents=True)
    pfs = sorted(got["data"]["pfs"])
    (lib / "80-vfs.rules").write_text("".join(
        f'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="{a}", ATTR{{sriov_numvfs}}="{got["data"]["pfs"][a]["numvfs"]}"\n'
        for a in pfs))
    got = sriov()
    assert got["status"] == "pass", got["detail"]
    assert got["data"]["pfs"][pfs[0]]["persisted"]["by"] == "/usr/lib/udev/rules.d/80-vfs.rules:1"
    etc = root / "etc/udev/rules.d"  # a file in /etc masks the same name in /usr/lib (udev(7))
    etc.mkdir(parents=True)
    (etc / "80-vfs.rules").write_text(f'# {pfs[0]} sriov_numvfs\n'
                                      f'ACTION=="add", KERNEL=="{pfs[0]}", ATTR{{sriov_numvfs}}="7"\n')
    got = sriov()
    assert got["status"] == "warn" and "after a reboot" in got["detail"] and "not persisted" in got["detail"]
    assert got["data"]["pfs"][pfs[0]]["persisted"] == {"numvfs": 7, "by": "/etc/udev/rules.d/80-vfs.rules:2"}
    assert got["data"]["pfs"][pfs[1]]["persisted"] is None


def test_acs_check_on_a_built_tree(tmp_path, check_json):
    root = tmp_path / "t"
    for addr, cls, cfg in (("0000:00:01.0", "0x060400", config_space(4096, [0x0001])),
                           ("0000:01:00.0", "0x030000", bytes(64))):
        parent = "pci0000:00/0000:00:01.0/0000:01:00.0" if addr.startswith("0000:01") else "pci0000:00/0000:00:01.0"
        d = root / "sys/devices" / parent
        d.mkdir(parents=True)
        (d / "class").write_text(cls + "\n")
        (d / "config").write_bytes(cfg)
        link(root, f"sys/devices/{parent}/iommu_group", "../../../kernel/iommu_groups/1")
        link(root, f"sys/bus/pci/devices/{addr}", f"../../../devices/{parent}")
    _, report = check_json(root, "--only", "pci.acs")
    acs = next(c for c in report["checks"] if c["id"] == "pci.acs")
    assert acs["status"] == "warn" and "00:01.0" in acs["detail"]
    (root / "sys/devices/pci0000:00/0000:00:01.0/config").write_bytes(config_space(4096, [0x0001, 0x000D]))
    _, report = check_json(root, "--only", "pci.acs")
    assert next(c for c in report["checks"] if c["id"] == "pci.acs")["status"] == "pass"


def test_devices_json_schema_and_steps(run_cli):
    root = str(PCI / "consumer-asrock-z370-gt1030")
    code, out, err = run_cli("--root", root, "devices", "--json")
    assert code == 0 and err == ""
    report = json.loads(out)
    assert set(report) == {"devices", "groups"} and report["groups"]["2"] == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"]
    code, out, _ = run_cli("--root", root, "devices", "01:00.0")
    assert code == 0
    assert "options vfio-pci ids=10de:1d01,10de:0fb8" in out and "softdep snd_hda_intel pre: vfio-pci" in out
    assert "<address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>" in out
    assert max(len(line) for line in out.splitlines()) <= 80  # what an operator copies fits, uncut
    assert "   -device vfio-pci,host=0000:01:00.0 \\\n   -device vfio-pci,host=0000:01:00.1\n" in out
    assert "RLIMIT_MEMLOCK" in out
    code, out, _ = run_cli("--root", str(PCI / "derived-z370-nvme-in-gpu-group"), "devices", "0000:01:00.0")
    assert code == 1 and "never" in out and "vfio-pci,host" not in out


def test_shared_ids_bind_by_address(run_cli):
    # eight identical QAT functions: ids= would take the seven the host keeps
    code, out, _ = run_cli("--root", str(PCI / "server-spr-aspeed-1fn-per-group"), "devices", "0000:6b:00.0")
    assert code == 0
    assert 'KERNEL=="0000:6b:00.0", ATTR{driver_override}="vfio-pci"' in out and "ids=" not in out


@pytest.mark.parametrize("bad", ["01:00", "zz:00.0", "0000:01:00.0;rm"])
def test_bad_address_is_exit_2(run_cli, bad):
    code, _, err = run_cli("--root", str(PCI / "consumer-asrock-z370-gt1030"), "devices", bad)
    assert code == 2 and "ADDRESS" in err


def test_unknown_address_is_exit_2(run_cli):
    code, _, err = run_cli("--root", str(PCI / "consumer-asrock-z370-gt1030"), "devices", "0000:09:00.0")
    assert code == 2 and "no PCI function" in err


def test_devices_text_never_cuts_an_address(run_cli):
    code, out, _ = run_cli("--root", str(PCI / "derived-z370-nvme-in-gpu-group"), "devices")
    assert code == 0
    assert "  0000:01:00.0  10de:1d01  gpu" in out
    assert "it shares group 2 with 05:00.0, the NVMe that holds root filesystem" in out.replace("\n      ", " ")


# --- this machine --------------------------------------------------------------------------

def _virtio_vm_without_iommu() -> bool:
    try:
        vendors = {open(f"/sys/bus/pci/devices/{d}/vendor").read().strip() for d in os.listdir("/sys/bus/pci/devices")}
    except OSError:
        return False
    return "0x1af4" in vendors and not os.listdir("/sys/kernel/iommu_groups")


@pytest.mark.skipif(not _virtio_vm_without_iommu(), reason="needs a virtio VM without IOMMU groups (this machine's kind)")
def test_live_devices_lists_virtio_and_says_why(run_cli):
    code, out, _ = run_cli("devices")
    assert code == 0 and "1af4:" in out and "passthrough unavailable:" in out
    code, out, _ = run_cli("devices", "--json")
    report = json.loads(out)
    assert {d["passthrough"]["verdict"] for d in report["devices"]} == {"no-iommu"}
    assert any("root filesystem" in d["host_needs"] for d in report["devices"])
    code, out, _ = run_cli("check", "--json", "--only", "iommu,iommu.groups")
    report = json.loads(out)
    groups = next(c for c in report["checks"] if c["id"] == "iommu.groups")
    assert code == 1 and groups["status"] == "fail" and "no IOMMU" in groups["detail"]


@pytest.mark.parametrize("name", ["sriov-cx4lx-2pf-4vf", "sriov-x722-pf-real", "server-spr-aspeed-1fn-per-group"])
def test_a_snapshot_holds_the_pci_facts(run_cli, tmp_path, name):
    """Links (driver, iommu_group, virtfn, physfn, the bus links) go to the manifest, config
    space byte for byte: the snapshot gives the same devices as the tree it was taken from."""
    root = str(PCI / name)
    code, _, err = run_cli("--root", root, "snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    assert not [p for p in (tmp_path / "snap").rglob("*") if p.is_symlink()]
    _, original, _ = run_cli("--root", root, "devices", "--json")
    _, copy, _ = run_cli("--root", str(tmp_path / "snap"), "devices", "--json")
    assert json.loads(copy) == json.loads(original)
    pci, _ = facts(name)
    snap, _ = read_pci(Host(str(tmp_path / "snap"))), None
    assert snap == pci
