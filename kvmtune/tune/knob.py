"""A change to one kernel file (sysctl, pool, KSM, THP): re-read, write, read back.

The knob types of the subsystems share this flow and differ in their path, identity
and comparison; a selector knob (``always [madvise] never``) compares its active word.
"""

from __future__ import annotations

from errno import errorcode

from kvmtune.errors import HostError
from kvmtune.probe import parse
from kvmtune.tune.change import CHANGED, FAILED, OK, Change


def refused(exc: HostError) -> str:
    code = errorcode.get(exc.errno, "") if exc.errno else ""
    return f"the kernel refused: {exc.reason}" + (f" ({code})" if code else "")


class KnobChange(Change):
    SELECTOR = False
    __slots__ = ()

    @property
    def rel(self) -> str:
        raise NotImplementedError

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [] if live else [(self.rel, "knob")]  # only a snapshot's knobs are files replaced whole

    def read(self, host) -> str | None:
        raw = host.read_optional(self.rel)
        if raw is None:
            return None
        return parse.bracketed(raw) if self.SELECTOR else raw.strip()

    def execute(self, host, ctx) -> None:
        current = self.read(host)  # just before writing: another tool may have set it
        if self.equal(current, self.after):
            self.status, self.detail = OK, self.detail or "already set"
            return
        try:
            self.write(host, ctx)
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)

    def write(self, host, ctx) -> None:
        host.write(self.rel, str(self.after))
        got = self.read(host)  # the kernel's answer, not the write's
        if not self.equal(got, self.after):
            self.status, self.detail = FAILED, f"wrote {self.after}, the kernel kept {got}"
            return
        self.status = CHANGED

    def undo(self, host) -> None:
        if self.before is not None:
            host.write(self.rel, str(self.before))


class TableKnob(KnobChange):
    """A knob of a sysfs directory whose names kvmtune keeps in a table (KSM, THP)."""

    DIR = ""
    TABLE: dict = {}
    __slots__ = ("knob",)

    def __init__(self, knob: str, before, after, status=None, detail=""):
        self.knob = knob
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"{self.KIND} {self.knob}")
    rel = property(lambda self: f"{self.DIR}/{self.knob}")

    def identity(self) -> dict:
        return {"knob": self.knob}

    @classmethod
    def key_for(cls, identity: dict) -> str:
        return f"{cls.KIND}:{identity['knob']}"

    @classmethod
    def from_identity(cls, identity, before, after, **kw):
        return cls(identity["knob"], before, after, **kw)

    @classmethod
    def parse_identity(cls, record: dict) -> dict:
        knob = record.get("knob")
        if knob not in cls.TABLE:
            raise ValueError(f"{cls.KIND} knob {knob!r} is not one kvmtune sets")
        return {"knob": knob}
