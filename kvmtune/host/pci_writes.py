"""The PCI binding writes of the host layer: driver_override, unbind, bind, drivers_probe.

Mixed into WritableHost beside HostChanges, whose allow-list check and no-follow walk it
uses: every path must match owned.PCI_BINDING, and no component of it may be a link, so
the caller names a device by its real directory (/sys/devices/pci0000:00/...), never
through the /sys/bus/pci/devices link. In a snapshot the tree stands in for the kernel
as for knobs: driver_override is replaced atomically and shows "(null)" once cleared, as
the kernel's does; bind, unbind and drivers_probe keep nothing of what is written to
them in the kernel (they are write-only), so in a snapshot the write is checked (its
directory must be there, no link on its way, the file a plain one if the tree holds it:
a capture cannot read a write-only file) and consumed, and the file stays as it was.
"""

from __future__ import annotations

import errno
import stat

from kvmtune.host.reads import exact_bytes

OVERRIDE = "/driver_override"
NULL = "(null)\n"  # what the kernel shows for a driver_override that is not set


class HostPciWrites:
    """The writes of a PCI binding (uses HostChanges' _guard, _at, _echo and _refuse_link)."""

    def write_pci(self, rel: str, value: str) -> None:
        """Write one PCI binding attribute as echo does; a refusal comes back as HostError."""
        self._guard("pci", rel)
        text = value if value.endswith("\n") else value + "\n"
        if self.live:
            self._echo(rel, text)
            return
        override = rel.endswith(OVERRIDE)

        def snapshot(dir_fd, name):
            from kvmtune.host.atomic import replace_at

            st = self._refuse_link(dir_fd, name)
            if (st is None and override) or (st is not None and not stat.S_ISREG(st.st_mode)):
                raise OSError(errno.ENOENT, "No such file or directory")
            if override:  # an empty write clears it (drivers/pci/pci-sysfs.c, driver_override_store)
                shown = NULL if text.strip() == "" else text
                replace_at(dir_fd, name, exact_bytes(shown), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))
        self._at(rel, snapshot)
