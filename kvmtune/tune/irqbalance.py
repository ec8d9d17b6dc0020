"""irqbalance's ban list: IRQBALANCE_BANNED_CPULIST in its environment file, so the daemon never
moves IRQs onto isolated CPUs. A minimal edit of a file kvmtune shares with the system: one
marked assignment appended (the last assignment wins when systemd or a shell reads the file),
removed again by rollback. irqbalance reads it when it starts: pending-restart."""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe import parse
from kvmtune.tune.change import CHANGED, FAILED, OK, PENDING_RESTART, RESTART, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind, one_of

FILES = ("etc/default/irqbalance", "etc/sysconfig/irqbalance")
MARK = "# kvmtune: keep IRQs off the isolated CPUs ('kvmtune rollback' removes these two lines)"
BINARIES = ("usr/sbin/irqbalance", "usr/bin/irqbalance")


def strip_ours(text: str) -> str:
    lines, out, skip = text.splitlines(), [], False
    for line in lines:
        if skip:
            skip = False
        elif line == MARK:
            skip = True
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")


def with_ban(text: str, cpus) -> str:
    base = strip_ours(text)
    return base + f"{MARK}\nIRQBALANCE_BANNED_CPULIST={parse.format_cpulist(sorted(cpus))}\n"


def restored(original: str, current: str | None) -> str | None:
    if current is None:
        return None
    stripped = strip_ours(current)
    return original if stripped.splitlines() == original.splitlines() else stripped


@kind
class IrqbalanceChange(Change):
    KIND, ORDER = "irqbalance", 70
    FIELDS = (Field("file", one_of(FILES), "irqbalance's environment file"),)
    when = RESTART
    __slots__ = ("file", "restart")

    def __init__(self, file: str, before, after, status=None, detail="irqbalance's ban list: restart irqbalance",
                 restart=("irqbalance",)):
        self.file, self.restart = file, tuple(restart)
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"/{self.file}")
    rel = property(lambda self: self.file)

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        return {"shared": {r["file"]: host.read_optional(r["file"]) for _, r in entries}}

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
        if not isinstance(value, str) or len(value) > 1 << 16:
            raise ValueError("the irqbalance original is not text")
        return value

    def original(self):
        return strip_ours(self.before) if self.before is not None else None

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(self.file, "shared")]

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_optional(self.file)
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
        text = host.read_optional(rel)
        if text is not None:
            return rel, text
    return None


def plan_irqbalance(profile, facts, split, warnings: list[str]) -> list[IrqbalanceChange]:
    if not profile.cpus.irqbalance:
        return []
    if facts.irqbalance is None:
        return []  # not installed (or no environment file): nothing moves IRQs but the kernel
    rel, text = facts.irqbalance
    return [IrqbalanceChange(rel, text, with_ban(text, split.isolated))]
