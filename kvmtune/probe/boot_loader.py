"""Which boot loader this host boots from, and whether kvmtune can give it kernel arguments.

kvmtune persists kernel arguments (boot-time huge pages, CPU isolation) in one of two ways:
- the entries of the Boot Loader Specification (/boot/loader/entries/*.conf: Fedora, RHEL 9.3+,
  and systemd-boot when its entries live there), whose ``options`` line it edits;
- a /etc/default/grub.d drop-in, which only means something where GRUB's configuration
  generator (update-grub, grub-mkconfig or grub2-mkconfig) and /etc/default/grub exist.
Anything else (a VM booted by its hypervisor with a direct kernel, systemd-boot with its
entries elsewhere on the ESP, a host with no boot loader installed) has no place kvmtune can
edit: the arguments are for the operator to add by hand.
"""

from __future__ import annotations

from kvmtune.record import record

GRUB_DEFAULTS = "etc/default/grub"
ENTRIES_DIR = "boot/loader/entries"  # host.owned.BLS_DIR, without importing its grammars
GENERATORS = ("update-grub", "grub2-mkconfig", "grub-mkconfig")
# The directories a root shell's PATH holds on the distributions kvmtune knows, under the root.
PATH_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
# Where systemd-boot's loader.conf lives: the ESP or XBOOTLDR mounted at /efi, /boot or /boot/efi.
SYSTEMD_BOOT = ("efi/loader/loader.conf", "boot/loader/loader.conf", "boot/efi/loader/loader.conf")


@record
class BootLoader:
    kind: str | None  # "bls", "grub", "systemd-boot" or None (none found)
    evidence: str  # what was found (or looked for), for the operator

    @property
    def editable(self) -> bool:
        """kvmtune can put kernel arguments where the next boot reads them."""
        return self.kind in ("bls", "grub")


def read_boot_loader(host) -> BootLoader:
    # host.owned (its grammars compiled at import) only where there are entries to hold to them:
    # check reads the boot loader on every host, for its hints.
    names = host.listdir(ENTRIES_DIR)
    if names:
        from kvmtune.host.owned import BLS_ENTRY

        entries = [n for n in names if BLS_ENTRY.fullmatch(n)]
        if entries:
            return BootLoader("bls", f"{len(entries)} boot entries in /{ENTRIES_DIR}")
    generator = next((f"/{d}/{g}" for g in GENERATORS for d in PATH_DIRS if host.exists(f"{d}/{g}")), None)
    has_defaults = host.exists(GRUB_DEFAULTS)
    if generator and has_defaults:
        return BootLoader("grub", f"/{GRUB_DEFAULTS} and {generator}")
    loader = next((f"/{p}" for p in SYSTEMD_BOOT if host.exists(p)), None)
    if loader:
        return BootLoader("systemd-boot", f"{loader}, with no entries in /{ENTRIES_DIR} for kvmtune to edit")
    if has_defaults:
        return BootLoader(None, f"/{GRUB_DEFAULTS}, but no GRUB configuration generator on PATH")
    if generator:
        return BootLoader(None, f"{generator}, but no /{GRUB_DEFAULTS}")
    return BootLoader(None, f"no GRUB, no /{ENTRIES_DIR}, no systemd-boot")
