"""A hint whose fix is a kernel argument says how in the host's own boot loader's terms:
update-grub means nothing on a BLS host or a VM booted with a direct kernel."""

from __future__ import annotations

import pytest

from tests.fixtures.synthetic import write_tree

DEV = "sys/devices/pci0000:00/0000:00:02.0"
LOADERS = {
    "grub": ({"etc/default/grub": "GRUB_CMDLINE_LINUX=\"\"\n", "usr/sbin/update-grub": "#!/bin/sh\n"},
             "GRUB_CMDLINE_LINUX", "grubby"),
    "bls": ({"boot/loader/entries/abc-6.1.conf": "title x\noptions root=/dev/sda1\n"}, "grubby", "update-grub"),
    "systemd-boot": ({"boot/efi/loader/loader.conf": "timeout 3\n"}, "systemd-boot", "update-grub"),
    "none": ({}, "no boot loader kvmtune knows", "update-grub"),
}


def tree(tmp_path, files: dict):
    """A PCI function in no IOMMU group: iommu.groups fails, and its hint names a kernel argument."""
    root = tmp_path / "h"
    write_tree(str(root), {f"{DEV}/class": "0x030000\n", f"{DEV}/vendor": "0x8086\n", f"{DEV}/device": "0x1234\n",
                           **files})
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    (root / "sys/bus/pci/devices/0000:00:02.0").symlink_to("../../../devices/pci0000:00/0000:00:02.0")
    return root


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_the_iommu_hint_speaks_the_hosts_boot_loader(loader, tmp_path, check_json):
    files, said, not_said = LOADERS[loader]
    _, report = check_json(tree(tmp_path, files), "--only", "iommu.groups")
    check = next(c for c in report["checks"] if c["id"] == "iommu.groups")
    assert check["status"] == "fail"
    assert said in check["hint"] and not_said not in check["hint"], check["hint"]
    assert "intel_iommu=on" in check["hint"]


def test_the_boot_loaders_directory_is_the_one_kvmtune_edits():
    from kvmtune.host.owned import BLS_DIR
    from kvmtune.probe.boot_loader import ENTRIES_DIR

    assert ENTRIES_DIR == BLS_DIR
