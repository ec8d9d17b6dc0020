"""The change types a journal may hold, and the check every record passes before rollback.

A record names its target by typed fields (a sysctl name, a pool size and node, a knob
from kvmtune's tables, one of kvmtune's own files, a mount path), never by a host path:
the path is derived from the fields, and each field is held to kvmtune.grammar. So a
tampered state file can at most ask for a knob kvmtune sets anyway.
"""

from __future__ import annotations

from kvmtune.tune.bls import BlsChange
from kvmtune.tune.cpus import IrqChange, MaskChange
from kvmtune.tune.files import FileChange, FstabChange
from kvmtune.tune.irqbalance import IrqbalanceChange
from kvmtune.tune.ksm import KsmChange
from kvmtune.tune.mounts import MountChange
from kvmtune.tune.pools import PoolChange
from kvmtune.tune.power import PowerChange
from kvmtune.tune.sysctl import SysctlChange
from kvmtune.tune.thp import ThpChange

KINDS = {cls.KIND: cls for cls in (SysctlChange, PoolChange, KsmChange, ThpChange, MountChange, FileChange,
                                   FstabChange, MaskChange, IrqChange, PowerChange, BlsChange, IrqbalanceChange)}
RECORD_KEYS = {"type", "name", "size_kb", "node", "knob", "path", "file", "original", "dirs", "irq", "index",
               "entry"}


def check_record(key: str, record) -> None:
    """ValueError naming what is wrong; nothing is acted on before every record passes."""
    if not isinstance(record, dict):
        raise ValueError(f"record {key!r} is not an object")
    cls = KINDS.get(record.get("type"))
    if cls is None:
        raise ValueError(f"record {key!r} has an unknown type {record.get('type')!r}")
    extra = set(record) - RECORD_KEYS
    if extra:
        raise ValueError(f"record {key!r} has unknown fields {sorted(extra)}")
    identity = cls.parse_identity(record)
    if cls.key_for(identity) != key:
        raise ValueError(f"record {key!r} does not name its own target ({cls.key_for(identity)!r})")
    cls.parse_original(record.get("original"))
    dirs = record.get("dirs", [])
    if dirs and cls not in (FileChange, MountChange):
        raise ValueError(f"record {key!r} may not create directories")
