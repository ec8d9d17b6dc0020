"""What a host is checked ready *for*: the workload intents, declared as data.

``general`` is a generic guest: plain ``check``. Any other intent adds the checks its
workload needs (run only when that intent is asked for, or named with --only, so plain
``check`` reads nothing more) and says which statuses of which checks block it: an IOMMU
that is off is only a warning for a generic guest, and a failure for device passthrough.

Readiness under an intent is judged on general's rules plus the intent's, so a host can be
ready for general and not for passthrough. New intents (and the checks that serve them) are
one entry here; nothing else names them.
"""

from __future__ import annotations

from kvmtune.checks.model import FAIL, INFO, UNKNOWN, WARN
from kvmtune.errors import UsageError

GENERAL = "general"
# What blocks when a judge found it missing, wrong, or could not tell.
NOT_THERE = (WARN, INFO, UNKNOWN)


class Intent:
    __slots__ = ("name", "help", "adds", "blocking", "gaps")

    def __init__(self, name: str, help: str, adds: tuple[str, ...] = (),
                 blocking: dict[str, tuple[str, ...]] | None = None, gaps: dict[str, str] | None = None):
        self.name, self.help = name, help
        self.adds = adds  # checks this intent runs beyond plain check
        self.blocking = blocking or {}  # check id -> statuses that block under this intent
        # check id -> the key of its data listing what this intent requires and the host lacks:
        # a check that passes for a generic guest may still name what a workload needs.
        self.gaps = gaps or {}


INTENTS = {i.name: i for i in (
    Intent(GENERAL, "a generic KVM guest (plain check)"),
    # iommu.groups fails where PCI functions have no groups (that blocks, as any failure does);
    # a group that shares a device with the host (warn) keeps that device from a guest, not
    # every device: it is named and blocks nothing. ACS on the bridges explains the groups.
    Intent("passthrough", "PCI devices assigned to guests through VFIO",
           adds=("memlock", "iommu.groups", "pci.acs"),
           blocking={"iommu": NOT_THERE, "devices.vfio": NOT_THERE, "memlock": (WARN, UNKNOWN)}),
    Intent("sriov", "SR-IOV virtual functions assigned to guests",
           adds=("sriov",),
           blocking={"iommu": NOT_THERE, "devices.vfio": NOT_THERE, "sriov": NOT_THERE}),
    # A guest that moves between hosts keeps its TSC: without an invariant TSC, or on a TSC the
    # kernel's watchdog marked unstable (clock warns), its clock jumps. clock.tsc only warns
    # (a frequency measured at boot, kvmclock_periodic_sync off): those block nothing.
    Intent("migration", "guests live-migrated between hosts (versions, TSC, clocksource)",
           adds=("clock.tsc",),
           blocking={"clock": (WARN, UNKNOWN), "kvm.device": NOT_THERE}),
    # cpu.isolation lists what pinned requires in effect (checks.isolation_quiet.pinned_gaps):
    # tick and RCU off the isolated CPUs, no IRQ on them, huge pages on their nodes, KSM off,
    # no idle state slower than the pinned profile's limit. Each one missing blocks, named.
    Intent("pinned", "guests pinned one vCPU to one isolated CPU (NFV, real-time)",
           blocking={"cpu.isolation": (UNKNOWN,)}, gaps={"cpu.isolation": "pinned_gaps"}),
)}
# Checks that run only for an intent that adds them (or when --only names them).
ON_DEMAND = frozenset(c for i in INTENTS.values() for c in i.adds)


def parse_intents(values: list[str]) -> tuple[str, ...]:
    """``--for passthrough,sriov --for pinned`` -> ("general", "passthrough", ...): general
    always first (its rules always hold), each once, in the order given."""
    names = [v.strip() for value in values for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in INTENTS]
    if bad:
        raise UsageError(f"--for: unknown intent {', '.join(map(repr, bad))}{_nearest(bad[0])}; "
                         f"known: {', '.join(INTENTS)}")
    return tuple(dict.fromkeys((GENERAL, *names)))


def _nearest(name: str) -> str:
    from difflib import get_close_matches  # only on this error path

    close = get_close_matches(name, list(INTENTS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def added_checks(intents: tuple[str, ...]) -> frozenset[str]:
    return frozenset(c for name in intents for c in INTENTS[name].adds)


def blocking_under(check_id: str, status: str, intents: tuple[str, ...]) -> tuple[str, ...]:
    """The intents among ``intents`` for which this check's status blocks readiness."""
    return tuple(n for n in intents if status in INTENTS[n].blocking.get(check_id, ()))


def gaps_for(check, name: str) -> list[str]:
    """What intent ``name`` requires that this check found missing (its data's gaps list)."""
    key = INTENTS[name].gaps.get(check.id)
    found = check.data.get(key) if key and isinstance(check.data, dict) else None
    return [str(g) for g in found] if isinstance(found, list) else []


def judge_intents(results: list, intents: tuple[str, ...], blocks_general) -> tuple[list, tuple[str, ...]]:
    """(the checks that block any of ``intents``, in report order; the intents none blocks).
    ``blocks_general(check)``: plain check's rule, which holds under every intent. A check one
    intent added judges only that intent; what an intent requires and the host lacks becomes a
    failure (an unknown stays unknown: it is not known to be missing)."""
    added = added_checks(intents)
    blocked_for = {name: [c for c in results if (c.id not in added or c.id in INTENTS[name].adds)
                          and (blocks_general(c) or c.status in INTENTS[name].blocking.get(c.id, ())
                               or gaps_for(c, name))]
                   for name in intents}
    ids = {id(c) for found in blocked_for.values() for c in found}
    blocked = [c for c in results if id(c) in ids]
    for c in blocked:
        under = blocking_under(c.id, c.status, intents)
        lacking = {n: gaps_for(c, n) for n in intents if n not in under and gaps_for(c, n)}
        if (under or lacking) and c.status != UNKNOWN:
            c.status = FAIL
            c.detail += "".join(f"; {n} requires: {'; '.join(g)}" for n, g in lacking.items())
            c.detail += f" (blocks {', '.join((*under, *lacking))})"
    return blocked, tuple(name for name in intents if not blocked_for[name])
