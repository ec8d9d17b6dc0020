"""Readers of host.migration's facts, the clock check and the migration intent (kvmtune.checks.read).

The clock reader is cheap (two sysfs files, the kernel log on a live host) and runs in plain
check. dpkg's database is read only when the ``packages`` fact is asked for (--for migration,
--format nfd, snapshot), and then once: the ``qemu`` reader takes the same text.
"""

from __future__ import annotations


def _clock(host, got):
    from kvmtune.probe.clock import read_clock
    return read_clock(host, got.cpu)


def _kernel(host, got):
    if got.cpu is not None and got.cpu.kernel:  # s390x's cpu facts read it already
        return got.cpu.kernel
    text = host.read_optional("proc/sys/kernel/osrelease")
    return (text.strip() or None) if text else None


def _dpkg_status(host, got):
    """dpkg's database, read once, and only where package versions are asked for."""
    if "packages" not in got.wanted:
        return None
    from kvmtune.probe.packages import read_dpkg_status
    return read_dpkg_status(host)


def _packages(host, got):
    from kvmtune.probe.packages import read_packages
    return read_packages(host, got.dpkg_status)


CLOCK_READERS = {
    "clock": (_clock, ("cpu",)),
    "kernel": (_kernel, ("cpu",)),
    "dpkg_status": (_dpkg_status, ()),
    "packages": (_packages, ("dpkg_status",)),
}
