"""Persisted files: kvmtune's own drop-ins (its lines in /etc/fstab: kvmtune.tune.fstab).

An own file (owned.OWNED_FILES) is kvmtune's whole: written atomically, never through a
link, its mode kept, its original (absent, usually) journaled with mode and owner. Only
kvmtune's seal, a last line holding the digest of every byte above it, proves a file
found there without a journal record kvmtune's; anything else is the host's original.
"""

from __future__ import annotations

import errno
import hashlib

from kvmtune.errors import HostError
from kvmtune.host.owned import OWNED_FILES
from kvmtune.tune.change import (CHANGED, FAILED, NOW, OK, PENDING, PENDING_REBOOT, REBOOT, Change, exact_original,
                                  printable)
from kvmtune.tune.fstab import FstabChange, unproven
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind, one_of

HEADER = "# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file.\n"
SEAL = "# kvmtune seal: sha256 "  # + the digest of every byte above: the last line of kvmtune's own files


def wanted(text: str | None):
    """The FileState kvmtune writes: its text, sealed, mode 0644, owned by whoever runs it (root)."""
    from kvmtune.host.door import FileState

    return None if text is None else FileState(text + _seal(text), 0o644, None, None)


def _seal(text: str) -> str:
    from kvmtune.host.reads import exact_bytes

    return f"{SEAL}{hashlib.sha256(exact_bytes(text)).hexdigest()}\n"


def is_ours(state) -> bool:
    """Whether a file at kvmtune's path is, byte for byte, what kvmtune wrote: its header, and a
    last line holding the digest of every byte above it. A header alone does not make it
    kvmtune's: an administrator's file that starts with one is kept as the host's original."""
    if state is None or not state.text.startswith(HEADER) or not state.text.endswith("\n"):
        return False
    head, _, last = state.text[:-1].rpartition("\n")
    return last + "\n" == _seal(head + "\n")


def unrecorded_warning(change) -> str | None:
    """What the operator must know of a target that looks like kvmtune's but has no journal record."""
    if isinstance(change, FileChange) and is_ours(change.before):
        return (f"{change.target} is kvmtune's own (its seal matches every byte) but kvmtune had no record of it: "
                "taken as kvmtune's, so rollback removes it")
    looks = (isinstance(change, FileChange) and change.before is not None and change.before.text.startswith(HEADER)) \
        or (isinstance(change, FstabChange) and unproven(change.before, change.proof))
    if looks:
        return (f"{change.target} holds what looks like kvmtune's own lines, but kvmtune has no record of them: "
                "they are kept as the host's own, and rollback gives them back as found")
    return None


@kind
class FileChange(Change):
    """One of kvmtune's own files; before/after are FileState or None (absent)."""

    KIND, ORDER, WHOLE_TEXT = "file", 92, True
    FIELDS = (Field("file", one_of(OWNED_FILES), "one of kvmtune's own files", attr="file_id"),)
    __slots__ = ("file_id", "missing", "when")

    def __init__(self, file_id: str, before, after, *, missing=(), when: str = NOW, status=None, detail=""):
        self.file_id, self.missing, self.when = file_id, tuple(missing), when
        super().__init__(before, after, status, detail)

    @staticmethod
    def equal(current, wanted) -> bool:
        if current is None or wanted is None:
            return current is wanted
        return (current.text, current.mode) == (wanted.text, wanted.mode)

    path = property(lambda self: OWNED_FILES[self.file_id])
    target = property(lambda self: f"/{OWNED_FILES[self.file_id]}")

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(self.path, "file")]

    @classmethod
    def parse_dirs(cls, identity: dict, dirs) -> None:
        path = OWNED_FILES[identity["file"]]
        if not isinstance(dirs, list) or any(not isinstance(d, str) or not path.startswith(d + "/") for d in dirs):
            raise ValueError(f"dirs {dirs!r} are not parents of /{path}")

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        """kvmtune's own files, never through a link."""
        paths = {r["file"]: OWNED_FILES[r["file"]] for _, r in entries}
        return {"files": {fid: _own_file(host, path) for fid, path in paths.items()},
                "file_dirs": {fid: host.path_state(path.rsplit("/", 1)[0]).missing for fid, path in paths.items()}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for _, record in entries:
            fid, original = record["file"], record["original"]
            after = None if original is None else cls.parse_original(original)
            # Its directories go with every other record's, deepest first (tune.created_dirs).
            out.append(cls(fid, facts.files[fid], after, detail="restored" if after is not None else "removed"))
        return out

    @staticmethod
    def parse_original(value):
        from kvmtune.host.door import FileState

        if value is None:
            return None
        ok = (isinstance(value, dict) and set(value) == {"text", "mode", "uid", "gid"}
              and all(isinstance(value[k], int) and not isinstance(value[k], bool)
                                                         for k in ("mode", "uid", "gid"))
              and 0 <= value["mode"] <= 0o7777 and value["uid"] >= 0 and value["gid"] >= 0)
        if not ok:
            raise ValueError("a file original is {text, mode, uid, gid}")
        exact_original(value["text"])
        return FileState(**value)

    def original(self):
        # Only kvmtune's seal over every byte proves a file kvmtune's (found without a journal:
        # a leftover, whose original is its absence); anything else at its path is the host's,
        # and rollback puts it back byte for byte.
        return None if self.before is None or is_ours(self.before) else self.before.to_json()

    def planned_dirs(self) -> tuple[str, ...]:
        return self.missing

    def shown(self, value):
        return None if value is None else printable(value.text)

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_file_state(self.path)
            if self.after is None:  # remove it, and the directories made for it
                if current is not None:
                    host.remove(self.path)
                removed = [d for d in reversed(self.missing) if host.rmdir(d)]
                self.status = CHANGED if current is not None or removed else OK
                return
            if self.equal(current, self.after):
                self.status = OK
                return
            for d in self.missing:
                host.mkdir(d)
            owner = (self.after.uid, self.after.gid) if self.after.uid is not None else None  # apply: the caller's
            host.write_file(self.path, self.after.text, self.after.mode, owner)
            got = host.read_file_state(self.path)
            if got is None or got.text != self.after.text:
                self.status, self.detail = FAILED, "written, but reads back different"
                return
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.status = PENDING_REBOOT if self.when == REBOOT else CHANGED

    def undo(self, host) -> None:
        if self.before is None:
            host.remove(self.path)
            for d in reversed(self.missing):
                host.rmdir(d)
        else:
            host.write_file(self.path, self.before.text, self.before.mode, (self.before.uid, self.before.gid))


def _own_file(host, path: str):
    """One of kvmtune's own files; a FIFO, device or oversized file at its place is bad input
    (exit 2), never read: kvmtune wrote none of those."""
    from kvmtune.errors import UsageError

    try:
        return host.read_file_state(path)
    except HostError as exc:
        if exc.errno in (errno.EINVAL, errno.EFBIG):
            raise UsageError(f"/{path}: {exc.reason}: not a file kvmtune wrote; move it aside to continue") from None
        raise
