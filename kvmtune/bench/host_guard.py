"""What the bench may change for a run (pool sizes, KSM), and putting it back exactly.

Every change records the value it found before writing; restore() writes those back
newest first and reads each one back. Pools, THP and KSM are also compared whole,
before and after, so a change nobody recorded still shows up as a warning.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe.hugepages import POOL_DIR, size_label
from kvmtune.probe.ksm import KSM_DIR
from kvmtune.probe.thp import KNOBS as THP_KNOBS, THP_DIR
from kvmtune.profile.schema import KSM_KNOBS  # every KSM knob kvmtune knows
from kvmtune.tune.pools import pool_rel


def host_state(host) -> dict[str, str]:
    """Every value the bench could disturb, as text: pools, THP and KSM knobs."""
    state = {}
    rels = [f"{THP_DIR}/{k}" for k in THP_KNOBS]
    rels += [f"{KSM_DIR}/{k}" for k in KSM_KNOBS]
    for entry in host.listdir(POOL_DIR):
        rels += [f"{POOL_DIR}/{entry}/nr_hugepages", f"{POOL_DIR}/{entry}/nr_overcommit_hugepages"]
    for rel in rels:
        try:
            text = host.read_optional(rel)
        except HostError:
            text = None
        if text is not None:
            state[rel] = text.strip()
    return state


class HostGuard:
    def __init__(self, host):
        self.host = host
        self.before = host_state(host)
        self.changes: list[tuple[str, str, str]] = []  # (rel, found, written)
        self.notes: list[str] = []  # what was changed for the run and given back, for the report

    def set(self, rel: str, value: str) -> str:
        """Write a knob for the run; the value the kernel then shows."""
        found = self.host.read(rel).strip()
        self.changes.append((rel, found, value))
        self.host.write(rel, value)
        return self.host.read(rel).strip()

    def grow_pool(self, size_kb: int, pages: int) -> int:
        """Add pages to a pool for the run; how many the kernel really added."""
        rel = pool_rel(size_kb)
        found = int(self.host.read(rel).strip())
        now = int(self.set(rel, str(found + pages)))
        added = now - found
        self.notes.append(f"grew the {size_label(size_kb)} pool from {found} to {now} for the run (asked for "
                          f"{pages} more pages) and gave back what was added")
        return added

    def restore(self) -> list[str]:
        """Put back every recorded change, newest first; problems found, as sentences."""
        problems = []
        while self.changes:
            rel, found, _ = self.changes.pop()
            try:
                self.host.write(rel, found)
                now = self.host.read(rel).strip()
            except HostError as exc:
                problems.append(f"could not restore /{rel} to {found}: {exc.reason}")
                continue
            if now != found:
                problems.append(f"/{rel} reads {now} after restoring {found}")
        after = host_state(self.host)
        for rel, value in self.before.items():
            if after.get(rel) != value:
                problems.append(f"/{rel} was {value} before the run and is {after.get(rel)} now")
        return problems

