"""Persisted files: kvmtune's own drop-ins, and its marked lines in /etc/fstab.

An own file (owned.OWNED_FILES) is kvmtune's whole: written atomically, never through a
link, its mode kept, its original (absent, usually) journaled with mode and owner.
fstab belongs to the system: kvmtune edits it minimally (its lines under a marker,
every other line in place), through its link if it is one, keeping mode, owner and
xattrs; rollback removes only kvmtune's lines, and gives back the original bytes when
nobody else changed the file meanwhile.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.host.owned import OWNED_FILES, SHARED_FILES
from kvmtune.tune.change import CHANGED, FAILED, NOW, OK, PENDING_REBOOT, REBOOT, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind, one_of

HEADER = "# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file.\n"
FSTAB = SHARED_FILES[0]
MARK = "# kvmtune: managed entry, 'kvmtune rollback' removes it"


def wanted(text: str | None):
    """The FileState kvmtune writes: its text, mode 0644, owned by whoever runs it (root)."""
    from kvmtune.host.door import FileState

    return None if text is None else FileState(text, 0o644, None, None)


def is_ours(state) -> bool:
    """A file at kvmtune's path that kvmtune wrote (found without a journal: a leftover)."""
    return state is not None and state.text.startswith(HEADER)


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
        return {"files": {fid: host.read_file_state(path) for fid, path in paths.items()},
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
              and isinstance(value["text"], str) and all(isinstance(value[k], int) and not isinstance(value[k], bool)
                                                         for k in ("mode", "uid", "gid"))
              and 0 <= value["mode"] <= 0o7777 and value["uid"] >= 0 and value["gid"] >= 0)
        if not ok:
            raise ValueError("a file original is {text, mode, uid, gid}")
        return FileState(**value)

    def original(self):
        # kvmtune's own text found without a journal was never the host's: absent is.
        return None if self.before is None or is_ours(self.before) else self.before.to_json()

    def planned_dirs(self) -> tuple[str, ...]:
        return self.missing

    def shown(self, value):
        return None if value is None else value.text

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


@kind
class FstabChange(Change):
    """kvmtune's lines in fstab. For apply, ``mounts`` are the entries to own and the new
    text is recomputed from the file as it is just before writing; for rollback the
    text to restore is fixed (``mounts`` is None)."""

    KIND, ORDER, FIELDS, WHOLE_TEXT = "fstab", 90, (), True
    __slots__ = ("mounts",)

    def __init__(self, before, after, mounts=None, status=None, detail=""):
        self.mounts = mounts
        super().__init__(before, after, status, detail)

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    target = f"/{FSTAB}"

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(FSTAB, "shared")]

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        """fstab, through its link if it is one (inside the root): a link that leads nowhere
        editable is refused here, before any write."""
        if host.exists(FSTAB):
            host.shared_target(FSTAB)
        return {"fstab": host.read_optional(FSTAB)}

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
        if value is not None and not isinstance(value, str):
            raise ValueError("the fstab original is not text")
        return value

    def original(self):
        # Marked lines found without a journal are kvmtune's own, not the host's.
        return strip_ours(self.before)

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_optional(FSTAB)
            new = fstab_text(current, self.mounts) if self.mounts is not None else self.after
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


def _foreign_lines(current: str | None):
    """The lines of fstab that kvmtune does not own (its own: a marker and the next line)."""
    skip_next = False
    for line in (current or "").splitlines():
        if skip_next:
            skip_next = False
        elif line == MARK:
            skip_next = True
        else:
            yield line


def strip_ours(text: str | None) -> str | None:
    """fstab without kvmtune's lines (byte-exact when it has none)."""
    if text is None or MARK not in text.splitlines():
        return text
    kept = list(_foreign_lines(text))
    return "\n".join(kept) + ("\n" if kept else "")


def fstab_text(current: str | None, mounts: list[tuple[str, str]]) -> str | None:
    """fstab with kvmtune's entries replaced by ``mounts`` [(path, options)]: every other
    line, comment and blank kept in place; ours appended, each under a marker comment."""
    if not mounts:
        return strip_ours(current)
    kept = list(_foreign_lines(current))
    for path, options in mounts:
        kept += [MARK, f"hugetlbfs {path} hugetlbfs {options} 0 0"]
    return "\n".join(kept) + "\n"


def foreign_entries(current: str | None, paths: set[str]) -> list[str]:
    """Paths that fstab already mounts with a line kvmtune does not own."""
    out = []
    for line in _foreign_lines(current):
        words = line.split()
        if len(words) >= 2 and not words[0].startswith("#") and words[1] in paths:
            out.append(words[1])
    return out


def restore_fstab(original: str | None, current: str | None) -> tuple[str | None, str | None]:
    """(text to put back, warning): the original bytes if only kvmtune's lines differ,
    else the current file without kvmtune's lines."""
    stripped = strip_ours(current)
    if (stripped or "").splitlines() == (original or "").splitlines():
        return original, None
    return stripped, ("/etc/fstab was changed by something else since kvmtune edited it: only "
                      "kvmtune's lines were removed")
