"""Readers of the read phase for devices and what pins memory: PCI functions, what the host
needs of them, VFIO, the VMM user's memlock limit and each guest's, systemd's manager config.

Kept apart from kvmtune.checks.read (the platform and memory readers); READERS there takes
these in. Same contract: a reader gets the Host and the facts read before it.
"""

from __future__ import annotations

# Whose memlock limit counts when --as-user names no one: the users distributions run QEMU as.
VMM_USERS = ("libvirt-qemu", "qemu")


def _systemd_conf(host, got):
    from kvmtune.probe.system import read_systemd_conf
    return read_systemd_conf(host)


def _memlock(host, got):
    from kvmtune.probe.memlock import read_memlock
    accounts = got.accounts
    user = got.as_user or next((u for u in VMM_USERS if accounts and u in accounts.users), None)
    found = accounts.user(user) if accounts and user else None
    groups = frozenset(filter(None, (accounts.group_name(g) for g in found.groups))) if found else frozenset()
    return read_memlock(host, user, groups, got.systemd_conf, got.kernel)


def _guest_limits(host, got):
    from kvmtune.probe.memlock import read_guest_limits
    return read_guest_limits(host, [g.pid for g in got.guests.guests] if got.guests else [])


def _pci(host, got):
    from kvmtune.probe.pci import read_pci
    return read_pci(host)


def _host_needs(host, got):
    from kvmtune.probe.pci_needs import read_host_needs
    return read_host_needs(host, got.mounts, mounts_read=True)


def _vfio(host, got):
    from kvmtune.probe.vfio import read_vfio
    return read_vfio(host)


def _sriov_persist(host, got):
    from kvmtune.probe.sriov_persist import read_sriov_persist
    return read_sriov_persist(host)


DEVICE_READERS = {
    "memlock": (_memlock, ("accounts", "systemd_conf", "kernel")),
    "systemd_conf": (_systemd_conf, ()),
    "guest_limits": (_guest_limits, ("guests",)),
    "pci": (_pci, ()),
    "host_needs": (_host_needs, ("mounts",)),
    "vfio": (_vfio, ()),
    "sriov_persist": (_sriov_persist, ()),
}
