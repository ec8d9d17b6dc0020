"""Readers of the read phase for where work runs: cores, isolation, power, boot arguments, guests.

Kept apart from kvmtune.checks.read (the platform and memory readers); READERS there
takes these in. Same contract: a reader gets the Host and the facts read before it.
"""

from __future__ import annotations


def _guests(host, got):
    from kvmtune.probe.guests import read_guests
    mounts = got.mounts or []
    nodes = tuple(n.id for n in got.numa.nodes) if got.numa else ()
    return read_guests(host, tuple(m.target for m in mounts if m.fstype == "hugetlbfs"), nodes)


def _applied_profiles(host, got):
    """The profiles kvmtune applied here (its state file), () if none or unreadable. Only the
    guests' KSM finding asks, so without guests it is not read. Through the journal's validated
    read-only view: a state kvmtune did not write names no profile."""
    if got.guests is None or not got.guests.guests:
        return ()
    from kvmtune.tune.journal import read_profiles

    return read_profiles(host)[0]


def _isolated_cores(host, got):
    """The cores of the isolated CPUs (to find one split between host and guests); none read
    when nothing is isolated."""
    from kvmtune.probe.topology import read_cores
    isolated = got.isolation.all_isolated if got.isolation else ()
    return read_cores(host, got.cpu.online, only=isolated) if got.cpu and isolated else ()


def _cores(host, got):
    from kvmtune.probe.topology import read_cores
    return read_cores(host, got.cpu.online) if got.cpu else None


def _isolation(host, got):
    from kvmtune.probe.isolation import read_isolation
    return read_isolation(host, got.cmdline or [], got.systemd_conf)


def _power(host, got):
    from kvmtune.probe.power import read_power
    return read_power(host, got.cmdline or [], got.isolation.all_isolated if got.isolation else ())


def _boot_args(host, got):
    from kvmtune.probe.bootargs import read_boot_args
    return read_boot_args(host)


def _boot_loader(host, got):
    from kvmtune.probe.boot_loader import read_boot_loader
    return read_boot_loader(host)


PLACEMENT_READERS = {
    "cores": (_cores, ("cpu",)),
    "isolation": (_isolation, ("cmdline", "systemd_conf")),
    "isolated_cores": (_isolated_cores, ("cpu", "isolation")),
    "power": (_power, ("cmdline", "isolation")),
    "boot_args": (_boot_args, ()),
    "boot_loader": (_boot_loader, ()),
    "guests": (_guests, ("mounts", "numa")),
    "applied_profiles": (_applied_profiles, ("guests",)),
}
