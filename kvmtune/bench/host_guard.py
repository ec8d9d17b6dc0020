"""What the bench may change for a run (a pool's size, KSM's run), and putting it back exactly.

Every change goes through the engine's change types and is journaled before it is
written (bench.undo), so a kill -9 leaves nothing that rollback or the next bench cannot
put back; restore() puts every change back, newest first, and reads each one back.
Pools, THP and KSM are also compared whole, before and after, so a change nobody
recorded still shows up as a warning.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe.hugepages import POOL_DIR, size_label
from kvmtune.probe.ksm import KSM_DIR
from kvmtune.probe.thp import KNOBS as THP_KNOBS, THP_DIR
from kvmtune.profile.schema import KSM_KNOBS  # every KSM knob kvmtune knows
from kvmtune.tune.change import FAILED
from kvmtune.tune.ksm import KsmChange
from kvmtune.tune.pools import PoolChange, pool_rel


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
    def __init__(self, host, undo):
        self.host, self.undo = host, undo
        self.before = host_state(host)
        self.notes: list[str] = []  # what was changed for the run and given back, for the report

    def set_ksm(self, knob: str, value: str) -> str | None:
        """Set a KSM knob for the run; None, or why the kernel refused."""
        change = KsmChange(knob, self.host.read(f"{KSM_DIR}/{knob}").strip(), value)
        self.undo.write(change)
        return change.detail if change.status == FAILED else None

    def grow_pool(self, size_kb: int, pages: int) -> int:
        """Add pages to a pool for the run; how many the kernel really added."""
        rel = pool_rel(size_kb)
        found = int(self.host.read(rel).strip())
        self.undo.write(PoolChange(size_kb, None, str(found), str(found + pages)))
        now = int(self.host.read(rel).strip())
        self.notes.append(f"grew the {size_label(size_kb)} pool from {found} to {now} for the run (asked for "
                          f"{pages} more pages) and gave back what was added")
        return now - found

    def restore(self) -> list[str]:
        """Put back every change, newest first; problems found, as sentences."""
        problems = self.undo.close()
        after = host_state(self.host)
        for rel, value in self.before.items():
            if after.get(rel) != value:
                problems.append(f"/{rel} was {value} before the run and is {after.get(rel)} now")
        return problems
