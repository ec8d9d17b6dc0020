"""Kernel arguments on hosts that boot Boot Loader Specification entries (Fedora, RHEL 9.3+).

There grub2-mkconfig no longer copies GRUB_CMDLINE_LINUX into the entries, so kvmtune edits
the ``options`` line of every entry under /boot/loader/entries, as ``grubby --update-kernel=ALL
--args`` does: an argument of the same name is replaced, hugepage arguments (given once per
page size) are added. The edit is minimal and keeps the file's mode and owner; the journal
keeps each entry's original text, and rollback puts it back (only the options line if
something else changed the entry meanwhile).
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.host.owned import BLS_DIR, BLS_ENTRY
from kvmtune.tune.change import CHANGED, FAILED, OK, REBOOT, Change, exact_original
from kvmtune.tune.lines import split_lines
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, kind

REPEATABLE = ("hugepagesz", "hugepages", "default_hugepagesz")
DETAIL = "boot entry options (as grubby --args): from the next boot"


def _is_options(line: str) -> bool:
    return line.split(None, 1)[:1] == ["options"]


def with_args(text: str, args: list[str]) -> str:
    """The entry with ``args`` on its options line (one is added if it has none); every other
    line is kept byte for byte (split on "\n" only: kvmtune.tune.lines)."""
    lines = split_lines(text)
    index = next((i for i, l in enumerate(lines) if _is_options(l)), None)
    words = lines[index].split()[1:] if index is not None else []
    for arg in args:
        key = arg.partition("=")[0]
        if arg in words:
            continue
        if key not in REPEATABLE:
            words = [w for w in words if w.partition("=")[0] != key]
        words.append(arg)
    line = "options " + " ".join(words) + "\n"
    if index is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(line)
    else:
        lines[index] = line
    return "".join(lines)


def restored(original: str, current: str | None) -> str:
    """The original entry; if its other lines changed since, only the original options line."""
    if current is None:
        return original

    def others(text: str) -> list[str]:
        return [l.rstrip("\n") for l in split_lines(text) if not _is_options(l)]

    if others(current) == others(original):
        return original
    options = [l.rstrip("\n") + "\n" for l in split_lines(original) if _is_options(l)]
    kept = [l if l.endswith("\n") else l + "\n" for l in split_lines(current) if not _is_options(l)]
    return "".join(kept + options)


@kind
class BlsChange(Change):
    """One BLS entry: before/after are its whole text."""

    KIND, ORDER = "bls", 91
    FIELDS = (Field("entry", lambda v: isinstance(v, str) and BLS_ENTRY.fullmatch(v) is not None,
                    "a boot loader entry's file name"),)
    when = REBOOT
    __slots__ = ("entry",)

    def __init__(self, entry: str, before, after, status=None, detail=DETAIL):
        self.entry = entry
        super().__init__(before, after, status, detail)

    rel = property(lambda self: f"{BLS_DIR}/{self.entry}")
    target = property(lambda self: f"/{BLS_DIR}/{self.entry}")

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        return {"bls": read_entries(host)}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        out = []
        for _, record in sorted(entries, key=lambda e: e[1]["entry"]):
            current = facts.bls.get(record["entry"])
            if current is not None:  # an entry removed since (an old kernel) has nothing to restore
                out.append(BlsChange(record["entry"], current, restored(record["original"], current),
                                     detail="options restored"))
        return out

    @staticmethod
    def parse_original(value):
        return exact_original(value)

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        return [(self.rel, "shared")]

    def execute(self, host, ctx) -> None:
        try:
            current = host.read_exact_optional(self.rel)
            if current is None:
                self.status, self.detail = FAILED, "the entry is gone"
                return
            if current == self.after:
                self.status = OK
                return
            host.write_shared(self.rel, self.after)
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.status = CHANGED

    def undo(self, host) -> None:
        if self.before is not None:
            host.write_shared(self.rel, self.before)


def read_entries(host) -> dict[str, str]:
    """Every BLS entry kvmtune may edit, by file name ({} where the host has none)."""
    out = {}
    for name in host.listdir(BLS_DIR):
        if BLS_ENTRY.fullmatch(name) and host.kind(f"{BLS_DIR}/{name}") == "file":
            text = host.read_exact_optional(f"{BLS_DIR}/{name}")
            if text is not None:
                out[name] = text
    return out


def plan_bls(entries: dict[str, str], args: list[str]) -> list[BlsChange]:
    return [BlsChange(name, text, with_args(text, args)) for name, text in sorted(entries.items()) if args]
