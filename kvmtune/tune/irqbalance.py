"""irqbalance's ban list: IRQBALANCE_BANNED_CPULIST in its environment file, so the daemon never
moves IRQs onto isolated CPUs. A minimal edit of a file kvmtune shares with the system: one
marked assignment appended (the last assignment wins when systemd or a shell reads the file),
removed again by rollback: only the one the journal proves kvmtune's (kvmtune.tune.lines). irqbalance reads it when it starts: pending-restart."""

from __future__ import annotations

import re

from kvmtune.errors import HostError
from kvmtune.probe import parse
from kvmtune.tune import lines
from kvmtune.tune.change import CHANGED, FAILED, OK, PENDING_RESTART, RESTART, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind, one_of
from kvmtune.tune.sections import section

FILES = ("etc/default/irqbalance", "etc/sysconfig/irqbalance")
MARK = "# kvmtune: keep IRQs off the isolated CPUs ('kvmtune rollback' removes these two lines)"
BINARIES = ("usr/sbin/irqbalance", "usr/bin/irqbalance")


BAN = re.compile(r"IRQBALANCE_BANNED_CPULIST=[0-9,-]+\n")


def managed(line: str) -> bool:
    return BAN.fullmatch(line) is not None


def strip_ours(text: str, original) -> str:
    """The file without the lines the journaled original proves kvmtune's (kvmtune.tune.lines)."""
    return lines.without_ours(text, original, MARK, managed)


def ban_line(cpus) -> str:
    return f"IRQBALANCE_BANNED_CPULIST={parse.format_cpulist(sorted(cpus))}"


def with_ban(text: str, cpus, original) -> str:
    """The file with kvmtune's ban list; ``original``: the journaled proof, or ``text`` if none."""
    return lines.with_ours(text, original, MARK, managed, [ban_line(cpus)])


def restored(original, current: str | None) -> str | None:
    if current is None:
        return None
    return lines.restored(original, current, MARK, managed)[0]


@kind
class IrqbalanceChange(Change):
    KIND, ORDER = "irqbalance", 70
    FIELDS = (Field("file", one_of(FILES), "irqbalance's environment file"),)
    when = RESTART
    __slots__ = ("file", "restart", "ban")

    def __init__(self, file: str, before, after, status=None, detail="irqbalance's ban list: restart irqbalance",
                 restart=("irqbalance",), ban: str | None = None):
        self.file, self.restart, self.ban = file, tuple(restart), ban  # ban: the line apply adds
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"/{self.file}")
    rel = property(lambda self: self.file)

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        return {"shared": {r["file"]: host.read_exact_optional(r["file"]) for _, r in entries}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for _, record in entries:
            current = facts.shared.get(record["file"])
            if current is not None:
                out.append(cls(record["file"], current, restored(record["original"], current),
                               detail="irqbalance's ban list restored: restart irqbalance"))
        return out

    @staticmethod
    def parse_original(value):
        return lines.parse_proof(value, managed)

    def original(self):
        # As found, before kvmtune's first edit, and the line this run adds.
        return lines.journaled(self.before, self.before, MARK, managed, [self.ban] if self.ban else [])

    def renewed_original(self, original):
        return original if self.ban is None else lines.journaled(self.before, original, MARK, managed, [self.ban])

    def settled_original(self, original):
        if self.ban is None or self.status not in (CHANGED, PENDING_RESTART):
            return original
        return lines.journaled(self.after, original, MARK, managed, [])

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(self.file, "shared")]

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_exact_optional(self.file)
            if current == self.after:
                self.status = OK
                return
            if current is None:
                self.status, self.detail = FAILED, "the file is gone"
                return
            host.write_shared(self.file, self.after)
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.status = PENDING_RESTART if self.restart else CHANGED

    def undo(self, host) -> None:
        if self.before is not None:
            host.write_shared(self.file, self.before)


def read_irqbalance(host) -> tuple[str, str] | None:
    """(file, text) of irqbalance's environment file where irqbalance is installed, else None."""
    if not any(host.exists(b) for b in BINARIES):
        return None
    for rel in FILES:
        text = host.read_exact_optional(rel)
        if text is not None:
            return rel, text
    return None


def plan_irqbalance(profile, facts, split, warnings: list[str]) -> list[IrqbalanceChange]:
    if not profile.cpus.irqbalance:
        return []
    if facts.irqbalance is None:
        return []  # not installed (or no environment file): nothing moves IRQs but the kernel
    rel, text = facts.irqbalance
    key = IrqbalanceChange.key_for({"file": rel})
    return [IrqbalanceChange(rel, text, with_ban(text, split.isolated, facts.journaled.get(key, text)),
                             ban=ban_line(split.isolated))]


def _read(host, profile, persist: bool, out: dict) -> None:
    if profile.cpus is not None:
        out["irqbalance"] = read_irqbalance(host)


def _plan(profile, facts, ctx) -> list:
    split = ctx.shared.get("split")
    # Its environment file is a boot-time setting: a --no-persist apply leaves it alone.
    return plan_irqbalance(profile, facts, split, ctx.warnings) if split is not None and ctx.persist else []


section("irqbalance", order=70, reads=_read, plan=_plan)
