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
    ALSO_REQUIRED = ("rel",)
    __slots__ = ()

    @property
    def rel(self) -> str:
        raise NotImplementedError

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [] if live else [(self.rel, "knob")]  # only a snapshot's knobs are files replaced whole

    def read(self, host) -> str | None:
        raw = host.read_exact_optional(self.rel)  # exact: rollback writes back the bytes it read
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

    # Rollback of a knob: read each journaled one as the change itself reads it, write back its
    # original (None: the knob did not exist, nothing to write), in the kind's ROLLBACK_SORT.
    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        return {"knobs": {key: cls.from_record(record, None, None).read(host) for key, record in entries}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        return [cls.from_record(record, facts.knobs.get(key), record["original"])
                for key, record in sorted(entries, key=lambda e: cls.rollback_sort(e[0], e[1]))
                if record["original"] is not None]

    @staticmethod
    def rollback_sort(key: str, record: dict):
        return key


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


def table_field(table) -> tuple:
    """The identity of a TableKnob kind: one knob of its table."""
    from kvmtune.tune.registry import Field, one_of

    return (Field("knob", one_of(table), "one kvmtune sets"),)
