"""A plan: the ordered changes that would make the host match a profile.

Built from the host and the profile before anything is written. Check mode
prints it, the diff is made from it, apply carries it out, verify reports what
in it is not ``ok``. Each subsystem module owns its ``plan_*`` and the
ordering rules of its knobs; this module only strings them together.
"""

from __future__ import annotations

NOW, RESTART, REBOOT = "now", "restart", "reboot"
# Statuses: ok (already so), pending (to write), blocked (cannot, with reason),
# pending-reboot / pending-restart (written, takes effect later); after apply also
# changed, failed, undone.
OK, PENDING, BLOCKED, PENDING_REBOOT, PENDING_RESTART = "ok", "pending", "blocked", "pending-reboot", "pending-restart"
CHANGED, FAILED, UNDONE = "changed", "failed", "undone"


class Change:
    """One target: a kernel knob, a hugepage pool, a mount, or a file kvmtune owns."""

    __slots__ = ("target", "kind", "rel", "before", "after", "when", "status", "detail", "meta")

    def __init__(self, target: str, kind: str, rel: str | None, before, after, when: str = NOW,
                 status: str = PENDING, detail: str = "", meta: dict | None = None):
        self.target = target  # what the operator reads: "sysctl vm.swappiness", "/etc/fstab"
        self.kind = kind  # knob, selector, pool, mount, file, unmerge
        self.rel = rel  # the host path written (None for mounts)
        self.before = before
        self.after = after
        self.when = when
        self.status = status
        self.detail = detail
        self.meta = meta or {}

    def __repr__(self) -> str:
        return f"Change({self.target!r}, {self.before!r} -> {self.after!r}, {self.status})"

    def to_json(self) -> dict:
        return {"target": self.target, "before": self.before, "after": self.after,
                "status": self.status, "detail": self.detail, "when": self.when}


class Plan:
    def __init__(self, profile, changes: list[Change], warnings: list[str]):
        self.profile = profile
        self.changes = changes
        self.warnings = warnings

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.status == PENDING]

    @property
    def reboot_required(self) -> bool:
        return any(c.when == REBOOT and c.status in (PENDING, CHANGED, PENDING_REBOOT) for c in self.changes)

    @property
    def restart_required(self) -> list[str]:
        out: list[str] = []
        for c in self.changes:
            if c.when == RESTART and c.status in (PENDING, CHANGED, PENDING_RESTART):
                for svc in c.meta.get("restart", ()):
                    if svc not in out:
                        out.append(svc)
        return out


def fields(value) -> list[str]:
    """Normalise a value for comparison: words, numbers as integers' text."""
    words = str(value).split()
    out = []
    for w in words:
        try:
            out.append(str(int(w)))
        except ValueError:
            out.append(w)
    return out


def same(current, wanted) -> bool:
    """Compare by meaning: ``1`` = ``"1"``, multi-field values word by word."""
    if current is None:
        return wanted is None
    return fields(current) == fields(wanted)


def knob_change(host, target: str, rel: str, wanted, selector: bool = False,
                when: str = NOW, detail: str = "") -> Change:
    """A single kernel file to bring to ``wanted``; ``selector`` reads ``a [b] c`` files."""
    from kvmtune.probe import parse

    raw = host.read_optional(rel)
    current = None if raw is None else (parse.bracketed(raw) if selector else raw.strip())
    kind = "selector" if selector else "knob"
    status = OK if same(current, wanted) else PENDING
    return Change(target, kind, rel, current, str(wanted), when, status, detail)


def build_plan(profile, host, facts, *, persist: bool = True, force: bool = False) -> Plan:
    """Every change, in the order apply must make them; raises ProfileError on bad input."""
    from kvmtune import conflicts, hugepages, hugetlbfs, ksm, persist as persistence, sysctl, thp

    changes: list[Change] = []
    warnings: list[str] = []
    changes += sysctl.plan_sysctl(profile, host, warnings)
    changes += hugepages.plan_hugepages(profile, host, facts, force=force)
    changes += hugetlbfs.plan_mounts(profile, host, facts, warnings)
    changes += ksm.plan_ksm(profile, host, facts, warnings)
    changes += thp.plan_thp(profile, host, facts)
    if persist:
        changes += persistence.plan_files(profile, host, facts, changes)
    warnings += conflicts.find_conflicts(profile, host, facts)
    return Plan(profile, changes, warnings)
