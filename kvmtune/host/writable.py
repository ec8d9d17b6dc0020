"""The Host the tuning engine works on: the reading Host plus its writes and mounts.

A separate class, so that check, which only reads, holds a Host that cannot write and
never loads the writing half.
"""

from __future__ import annotations

from kvmtune.host.door import Host
from kvmtune.host.changes import HostChanges
from kvmtune.host.affinity import HostAffinity
from kvmtune.host.mounts import HostMounts
from kvmtune.host.pci_writes import HostPciWrites


class WritableHost(Host, HostChanges, HostMounts, HostPciWrites, HostAffinity):
    """A machine kvmtune may change, within what kvmtune.host.owned allows."""
