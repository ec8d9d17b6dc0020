"""The strict grammars every name, value and path from a profile or a state file must match.

Input is data, never syntax: a value that could end a line, start a comment, split an
fstab field or climb out of a directory is refused here, before anything is planned,
so no later stage (drop-in text, fstab line, host path) has to escape anything.
"""

from __future__ import annotations

import re


def digits(text: str) -> bool:
    """ASCII digits only. str.isdigit() also says yes to '²' (which int() refuses: exit 3) and
    to '٣' (which int() reads as 3: a silent change); neither is a number in a kernel file."""
    return text.isascii() and text.isdigit()


_NUMBER = re.compile(r"[-+]?[0-9]+")


def number(text: str | None) -> int | None:
    """A whole number written in ASCII (spaces around allowed), else None: int() alone reads
    '٣' and '７' as 3 and 7, and '1_000' as 1000."""
    text = None if text is None else text.strip()
    return int(text) if text and _NUMBER.fullmatch(text) else None


_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]+")


def hex_number(text: str) -> int:
    """An ASCII hex number; ValueError otherwise, as int(text, 16) would (but it reads '٣' as 3)."""
    if not _HEX.fullmatch(text):
        raise ValueError(f"not a hex number: {text[:20]!r}")
    return int(text, 16)


# sysctl.d(5) dotted names; "/" (its alternative separator) and anything that is not a
# name character are refused. A leading "-" (optional key) is split off before this.
_SYSCTL_PART = r"[A-Za-z0-9_][A-Za-z0-9_+@:-]*"
SYSCTL_NAME = re.compile(rf"{_SYSCTL_PART}(?:\.{_SYSCTL_PART})*")
SYSCTL_NAME_MAX = 256
# Printable ASCII, single spaces allowed inside (multi-field values such as tcp_rmem).
SYSCTL_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
SYSCTL_VALUE_MAX = 4096

_PATH_PART = r"[A-Za-z0-9_+@:-][A-Za-z0-9_.+@:-]*"
MOUNT_PATH = re.compile(rf"(?:/{_PATH_PART})+")
MOUNT_PATH_MAX = 1024
# Where a hugetlbfs mount would hide or shadow what the system needs, or kvmtune's own state.
FORBIDDEN_UNDER = ("/etc", "/proc", "/sys", "/usr", "/boot", "/bin", "/sbin", "/lib", "/lib32",
                   "/lib64", "/libx32", "/var/lib/kvmtune", "/run/lock")
FORBIDDEN_EXACT = ("/dev", "/var", "/var/lib", "/run", "/tmp", "/home", "/root", "/mnt", "/srv", "/opt",
                   "/media", "/snap")

# useradd(8)'s portable names (NAME_REGEX), or a numeric id.
ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10}")


def sysctl_name_problem(name: str) -> str | None:
    if len(name) > SYSCTL_NAME_MAX or not SYSCTL_NAME.fullmatch(name):
        return ("not a sysctl name: use dotted words of letters, digits, '_' and '-' such as "
                "vm.swappiness ('/', spaces, control characters and empty parts are refused)")
    return None


def sysctl_value_problem(value: str) -> str | None:
    if len(value) > SYSCTL_VALUE_MAX or not SYSCTL_VALUE.fullmatch(value):
        return ("expected a value of printable characters on one line, without leading or trailing "
                "spaces (write multi-field values as \"4096 87380 6291456\")")
    return None


def mount_path_problem(path: str, parent: bool = False) -> str | None:
    """Why ``path`` may not be a hugetlbfs mount point (``parent``: a directory on the way to one)."""
    if len(path) > MOUNT_PATH_MAX or not MOUNT_PATH.fullmatch(path):
        return ("expected an absolute path, normalised (no '.', '..' or empty parts, no trailing '/'), "
                "of letters, digits and . _ + @ : - (no spaces or other characters)")
    if any(part in (".", "..") for part in path.split("/")):
        return "expected a normalised path (no '.' or '..' parts)"
    if (path in FORBIDDEN_EXACT and not parent) or any(path == p or path.startswith(p + "/") for p in FORBIDDEN_UNDER):
        return (f"{path} is not a place for a hugetlbfs mount: not {', '.join(FORBIDDEN_EXACT)} "
                f"themselves, nothing under {', '.join(FORBIDDEN_UNDER)} (use e.g. /dev/hugepages1G)")
    return None


def account_problem(name: str) -> str | None:
    if not ACCOUNT.fullmatch(name):
        return "expected a user or group name (letters, digits, '_', '.', '-', at most 32) or a numeric id"
    return None


MODULE_PARAM = re.compile(r"[a-z][a-z0-9_]{0,63}")
MODULE_VALUE = re.compile(r"[A-Za-z0-9_.,:+-]{1,64}")
KVM_MODULES = ("kvm", "kvm_intel", "kvm_amd")


def module_param_problem(name: str) -> str | None:
    if not MODULE_PARAM.fullmatch(name):
        return "expected a module parameter name (lower-case letters, digits, _)"
    return None


def module_value_problem(value: str) -> str | None:
    if not MODULE_VALUE.fullmatch(value):
        return "expected a module parameter value: up to 64 letters, digits and _.,:+- (no spaces or quotes)"
    return None


# A PCI function as sysfs names it (domain:bus:device.function, lower-case hex, as the
# kernel prints it); a network interface name as the kernel accepts one (dev_valid_name:
# at most 15 bytes, no '/', ':' or whitespace, not '.' or '..'), here in plain ASCII.
# Patterns, not compiled here: check imports this module, and only apply uses them.
PCI_ADDRESS = r"[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]"
NETDEV = r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,14}"


def is_pci_address(text) -> bool:
    return isinstance(text, str) and re.fullmatch(PCI_ADDRESS, text) is not None


def pf_name_problem(text: str) -> str | None:
    """A physical function named by its PCI address or one of its network interfaces."""
    if is_pci_address(text) or (re.fullmatch(NETDEV, text) and text not in (".", "..")):
        return None
    return "expected a PF's PCI address (0000:01:00.0) or its network interface name (enp1s0f0)"
