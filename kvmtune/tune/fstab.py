"""kvmtune's lines in /etc/fstab, which belongs to the system.

kvmtune edits it minimally (its lines under a marker, every other byte in place),
through its link if it is one, keeping mode, owner and xattrs; rollback removes only
the lines the journal proves kvmtune's (kvmtune.tune.lines), and gives back the
original bytes when nobody else changed the file meanwhile.
"""

from __future__ import annotations

import re

from kvmtune.errors import HostError
from kvmtune.host.owned import SHARED_FILES
from kvmtune.tune import lines
from kvmtune.tune.change import CHANGED, FAILED, OK, Change, printable
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import kind

FSTAB = SHARED_FILES[0]
MARK = "# kvmtune: managed entry, 'kvmtune rollback' removes it"
ENTRY = re.compile(r"hugetlbfs /[^\s]+ hugetlbfs [A-Za-z0-9_=,.%:-]+ 0 0\n")
FIELD_SEP = re.compile(r"[ \t]+")


@kind
class FstabChange(Change):
    """kvmtune's lines in fstab. For apply, ``mounts`` are the entries to own and the new
    text is recomputed from the file as it is just before writing, with ``proof`` (the
    journaled original: kvmtune.tune.lines) telling its lines from the host's; for
    rollback the text to restore is fixed (``mounts`` is None)."""

    KIND, ORDER, FIELDS, WHOLE_TEXT = "fstab", 90, (), True
    __slots__ = ("mounts", "proof")

    def __init__(self, before, after, mounts=None, proof=None, status=None, detail=""):
        self.mounts, self.proof = mounts, proof
        super().__init__(before, after, status, detail)

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    target = f"/{FSTAB}"

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(FSTAB, "shared")]

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        """fstab, read through its link if it is one (inside the root); a write never follows
        it (engine._refuse_links refuses before a run, the host layer at the write)."""
        return {"fstab": host.read_exact_optional(FSTAB)}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for _, record in entries:
            text, warning = restore_fstab(record["original"], facts.fstab)
            out.append(cls(facts.fstab, text, detail="kvmtune's lines removed"))
            if warning:
                warnings.append(warning)
        return out

    @staticmethod
    def parse_original(value):
        return lines.parse_proof(value, managed)

    def original(self):
        # Recorded once, before kvmtune's first edit: the file as found, marker lines and all.
        return lines.journaled(self.before, self.before, MARK, managed, _entries(self.mounts or []))

    def renewed_original(self, original):
        if self.mounts is None:
            return original
        return lines.journaled(self.before, original, MARK, managed, _entries(self.mounts))

    def settled_original(self, original):
        # Written: kvmtune's lines are now only this run's (a copy made later stays the admin's).
        if self.mounts is None or self.status != CHANGED:
            return original
        return lines.journaled(self.after, original, MARK, managed, [])

    def shown(self, value):
        return None if value is None else printable(value)

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_exact_optional(FSTAB)
            new = fstab_text(current, self.mounts, self.proof) if self.mounts is not None else self.after
            if new == current:
                self.status = OK
                return
            if new is None:
                host.remove(FSTAB)
            else:
                host.write_shared(FSTAB, new, create=current is None)
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.after = new
        self.status = CHANGED

    def undo(self, host) -> None:
        if self.before is None:
            host.remove(FSTAB)
        else:
            host.write_shared(FSTAB, self.before, create=True)


def managed(line: str) -> bool:
    """A line of the form kvmtune writes in fstab (its marker is needed too, and its proof)."""
    return ENTRY.fullmatch(line) is not None


def strip_ours(text: str | None, original) -> str | None:
    """fstab without the lines the journaled original proves kvmtune's (byte-exact otherwise)."""
    return lines.without_ours(text, original, MARK, managed)


def fstab_text(current: str | None, mounts: list[tuple[str, str]], original) -> str | None:
    """fstab with kvmtune's entries replaced by ``mounts`` [(path, options)]: every other
    line, comment and blank kept in place, byte for byte; ours appended, each under a marker."""
    if not mounts:
        return strip_ours(current, original)
    return lines.with_ours(current, original, MARK, managed, _entries(mounts))


def _entries(mounts: list[tuple[str, str]]) -> list[str]:
    return [f"hugetlbfs {path} hugetlbfs {options} 0 0" for path, options in mounts]


def unproven(current: str | None, original) -> bool:
    """Whether fstab holds marked lines of kvmtune's form that its journal does not prove its own."""
    found = lines.split_lines(current)
    return len(lines.pairs(found, MARK, managed)) * 2 > len(lines.ours(found, original, MARK, managed))


def foreign_entries(current: str | None, paths: set[str], original) -> list[str]:
    """Paths that fstab already mounts with a line kvmtune does not own."""
    found = lines.split_lines(current)
    mine = lines.ours(found, original, MARK, managed)
    out = []
    for i, line in enumerate(found):
        words = FIELD_SEP.split(line.strip(" \t\n"))  # fstab's fields part on blanks and tabs only
        if i not in mine and len(words) >= 2 and not words[0].startswith("#") and words[1] in paths:
            out.append(words[1])
    return out


def restore_fstab(original, current: str | None) -> tuple[str | None, str | None]:
    """(text to put back, warning): the original bytes if only kvmtune's lines differ,
    else the current file without kvmtune's lines."""
    text, changed = lines.restored(original, current, MARK, managed)
    return text, ("/etc/fstab was changed by something else since kvmtune edited it: only "
                  "kvmtune's lines were removed") if changed else None
