"""How to change the kernel command line on this host, for the hints of the checks whose fix is
a kernel argument: said in the terms of the boot loader the host has (probe.boot_loader), not
GRUB's everywhere (update-grub means nothing on a BLS host or a VM booted with a direct kernel)."""

from __future__ import annotations

GRUB = ("add it to GRUB_CMDLINE_LINUX in /etc/default/grub, run 'update-grub' "
        "(or 'grub2-mkconfig -o /boot/grub2/grub.cfg'), and reboot")
BLS = ("'grubby --update-kernel=ALL --args=...' (--remove-args=... to take one out) edits every entry "
       "in /boot/loader/entries; then reboot")
SYSTEMD_BOOT = ("edit the 'options' line of the entries systemd-boot reads on the ESP (or /etc/kernel/cmdline, "
                "then 'kernel-install add'), and reboot")
# The fact was not read (a snapshot that lacks it): the two common ways, named as such.
EITHER = ("on GRUB hosts add it to GRUB_CMDLINE_LINUX in /etc/default/grub and run 'update-grub', on BLS "
          "hosts 'grubby --update-kernel=ALL --args=...'; then reboot")


def kernel_args(loader) -> str:
    """The tail of a hint ("Add 'x=1': ..."), for probe.boot_loader.BootLoader or None."""
    if loader is None:
        return EITHER
    if loader.kind == "grub":
        return GRUB
    if loader.kind == "bls":
        return BLS
    if loader.kind == "systemd-boot":
        return SYSTEMD_BOOT
    return (f"no boot loader kvmtune knows is installed here ({loader.evidence}): set it where this "
            "kernel's command line comes from (a VM booted with a direct kernel: its hypervisor's "
            "-append or libvirt <cmdline>), and reboot")


def kernel_args_here(facts) -> str:
    """kernel_args for the boot loader the check's facts hold (a check declares ``boot_loader``)."""
    return kernel_args(facts.known("boot_loader"))
