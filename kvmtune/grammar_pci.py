"""The grammars of PCI names from a vfio profile or a journal record (kvmtune.grammar's rules:
input is data, refused here unless it is exactly one of these forms). A module of its own,
so that check, which imports kvmtune.grammar, does not compile them."""

from __future__ import annotations

import re


# PCI functions as a vfio profile names them: a full address (domain:bus:device.function,
# as sysfs spells it) or vendor:device ids; and the sysfs names of a driver and a device dir.
PCI_ADDRESS = re.compile(r"[0-9a-f]{4,5}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]")
PCI_IDS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{4}")
DRIVER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
_PCI_BUS = r"pci[0-9a-f]{4,5}:[0-9a-f]{2}"
_PCI_FN = r"[0-9a-f]{4,5}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]"
# The device's own directory: where the kernel keeps it, or a snapshot's flat bus entry.
PCI_DEVICE_DIR = re.compile(rf"sys/devices/{_PCI_BUS}(?:/{_PCI_FN})+|sys/bus/pci/devices/{_PCI_FN}")


def pci_entry_problem(text: str) -> str | None:
    """A vfio device entry: '0000:01:00.0' or '10de:1d01' (lower or upper case hex)."""
    low = text.lower()
    if PCI_ADDRESS.fullmatch(low) or PCI_IDS.fullmatch(low):
        return None
    return ("expected a full PCI address such as '0000:01:00.0' (domain:bus:device.function) "
            "or vendor:device ids such as '10de:1d01'")


def driver_name_problem(name: str) -> str | None:
    if not DRIVER_NAME.fullmatch(name) or name in (".", ".."):
        return "not a driver name (letters, digits and _ . + -, at most 64)"
    return None


def pci_dir_problem(rel: str, address: str) -> str | None:
    """A PCI device's sysfs directory, ending in its own address."""
    if not PCI_DEVICE_DIR.fullmatch(rel) or rel.rsplit("/", 1)[-1] != address:
        return f"not the sysfs directory of PCI device {address}"
    return None
