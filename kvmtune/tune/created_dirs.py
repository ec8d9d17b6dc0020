"""The directories kvmtune created for its files and mounts, removed by rollback in one step.

Records name the directories their change created (``dirs``). Removing them record by record
leaves a parent that two records share (/mnt, made for /mnt/a and used by /mnt/b), so rollback
collects them over every record and removes them last, deepest first, each only if empty: a
directory someone has since put files in is left with them. Not a journal kind: never recorded.
"""

from __future__ import annotations

from kvmtune.tune.change import CHANGED, OK, Change


class CreatedDirs(Change):
    KIND = "dirs"
    __slots__ = ("owners", "left")
    target = "directories kvmtune created"

    def __init__(self, owners: dict, existing: tuple):
        self.owners = owners  # directory -> journal keys of the records that created it
        self.left: tuple = ()
        super().__init__(tuple(existing), ())

    @staticmethod
    def equal(current, wanted) -> bool:
        return tuple(current) == tuple(wanted)

    def shown(self, value):
        return " ".join(f"/{d}" for d in value) or None

    def execute(self, host, ctx) -> None:
        deepest_first = sorted(self.before, key=lambda d: (d.count("/"), d), reverse=True)
        self.left = tuple(d for d in deepest_first if not host.rmdir(d) and host.exists(d))
        self.status = CHANGED if len(self.left) < len(self.before) else OK
        if self.left:
            self.detail = "not empty, left with what is in them: " + self.shown(self.left)

    def undo(self, host) -> None:
        pass  # rollback is not undone

    def owners_of(self, dirs) -> set[str]:
        """The journal keys of the records that created these directories."""
        return {key for d in dirs for key in self.owners.get(d, ())}


def owners(records: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, record in records.items():
        for d in record.get("dirs", ()):
            out.setdefault(d, []).append(key)
    return out


def read_created(host, records: dict) -> dict:
    """The journaled directories that exist now (TuneFacts field)."""
    return {"created_dirs": tuple(d for d in owners(records) if host.exists(d))}


def plan_created(records: dict, facts) -> list[CreatedDirs]:
    made = owners(records)
    return [CreatedDirs(made, facts.created_dirs)] if made else []
