"""The unit of a plan, shared by every subsystem: one target, its value before and after.

Each subsystem module declares its change types on this base (a sysctl, a pool, a KSM
or THP knob, a mount, a file) with what only it knows: its identity fields, the host path,
how to write it, read it back and undo it, and how rollback reads and restores it
(tune.registry lists what a declaration holds). The base derives the journal key and
identity from the declared fields, and knows the statuses and the JSON every command and
the Ansible module report. It imports no subsystem, so the subsystems and the engine can
all import it.
"""

from __future__ import annotations

NOW, RESTART, REBOOT = "now", "restart", "reboot"
OK, PENDING, BLOCKED = "ok", "pending", "blocked"
PENDING_REBOOT, PENDING_RESTART = "pending-reboot", "pending-restart"
CHANGED, FAILED, UNDONE = "changed", "failed", "undone"
STATUSES = (OK, PENDING, BLOCKED, PENDING_REBOOT, PENDING_RESTART, CHANGED, FAILED, UNDONE)
DONE = (CHANGED, PENDING_REBOOT, PENDING_RESTART)  # written by this run


def done_by_run(change) -> bool:
    """Written by this run: a change that only reports the running kernel (OBSERVED) never is."""
    return change.status in DONE and not change.OBSERVED


def fields(value) -> list[str]:
    """Normalise a value for comparison: words, numbers as integers' text."""
    out = []
    for word in str(value).split():
        try:
            out.append(str(int(word)))
        except ValueError:
            out.append(word)
    return out


def same(current, wanted) -> bool:
    """Compare by meaning: ``1`` = ``"1"``, multi-field values word by word."""
    if current is None or wanted is None:
        return current is wanted
    return fields(current) == fields(wanted)


def exact_original(value) -> str:
    """A journaled text as apply read it: exact text (kvmtune.host.reads) of at most the
    bytes apply reads of one file. ValueError if it is not one."""
    from kvmtune.host.reads import MAX_READ, exact_bytes

    if not isinstance(value, str):
        raise ValueError(f"original {value!r:.60} is not text")
    try:
        size = len(exact_bytes(value))
    except UnicodeEncodeError:
        raise ValueError(f"original {value!r:.60} holds a character no file's bytes give") from None
    if size > MAX_READ:
        raise ValueError(f"original of {size} bytes is larger than kvmtune reads ({MAX_READ} bytes)")
    return value


def printable(text: str) -> str:
    """Exact text as a terminal or JSON reader may take it: bytes that are not UTF-8 as U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate no byte decodes to (a hand-made journal)
        return text.encode("utf-8", "replace").decode("utf-8")


class Change:
    """One target of a plan. Subclasses set KIND and implement the methods marked below."""

    KIND = ""
    when = NOW
    __slots__ = ("before", "after", "status", "detail")

    def __init__(self, before, after, status: str | None = None, detail: str = ""):
        self.before = before
        self.after = after
        self.status = status if status is not None else (OK if self.equal(before, after) else PENDING)
        self.detail = detail

    # -- what a subsystem declares (tune.registry checks it at import) ---------

    FIELDS: tuple = ()  # registry.Field of each identity field, in the constructor's order
    ORDER = 0  # its place in apply's order; rollback runs the reverse
    WHOLE_TEXT = False  # a diff shows before and after as whole files, not as one value
    # A change kvmtune never carries out, that says what the running kernel shows (the IOMMU
    # mode until the reboot): its pending-reboot is no write of this run (tune.iommu).
    OBSERVED = False

    @property
    def target(self) -> str:
        """What the operator reads (``sysctl vm.swappiness``, ``/etc/fstab``)."""
        raise NotImplementedError

    @classmethod
    def read_rollback(cls, host, entries: list[tuple[str, dict]]) -> dict:
        """The current values rollback of these journal entries plans against (TuneFacts fields)."""
        raise NotImplementedError

    @classmethod
    def restore(cls, entries: list[tuple[str, dict]], facts, warnings: list[str]) -> list["Change"]:
        """The changes that put these journal entries' originals back, in order."""
        raise NotImplementedError

    @staticmethod
    def parse_original(value):
        """A journaled original, checked before rollback writes it (ValueError if unfit).

        Whatever apply read is accepted back: any character, newlines included, up to the
        bound of apply's own read; the identity, not the value, is what grammars hold."""
        return None if value is None else exact_original(value)

    @classmethod
    def parse_dirs(cls, identity: dict, dirs) -> None:
        """Directories a record may have created (ValueError if not its own): none by default."""
        if dirs:
            raise ValueError(f"a {cls.KIND} record may not create directories")

    # -- derived from the declaration --------------------------------------------

    @property
    def key(self) -> str:
        """The journal's identity of the target (``sysctl:vm.swappiness``)."""
        return self.key_for(self.identity())

    @classmethod
    def key_for(cls, identity: dict) -> str:
        return ":".join([cls.KIND] + [f.key(identity[f.name]) for f in cls.FIELDS])

    def identity(self) -> dict:
        """The fields, besides the type, that name the target in the journal."""
        return {f.name: getattr(self, f.attr) for f in self.FIELDS}

    @classmethod
    def parse_identity(cls, record: dict) -> dict:
        """The identity of a journal record, held to kvmtune's grammars (ValueError if not)."""
        return {f.name: f.parse(cls.KIND, record.get(f.name)) for f in cls.FIELDS}

    @classmethod
    def from_identity(cls, identity: dict, before, after, **kw) -> "Change":
        """A change of the target a journal record names (its identity already checked)."""
        return cls(*(identity[f.name] for f in cls.FIELDS), before, after, **kw)

    @classmethod
    def from_record(cls, record: dict, before, after, **kw) -> "Change":
        return cls.from_identity(cls.parse_identity(record), before, after, **kw)

    def execute(self, host, ctx) -> None:
        """Re-read, write only if it differs, read back; set status and detail."""
        raise NotImplementedError

    def undo(self, host) -> None:
        """Put back ``before`` (this run's starting value) after a later failure."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------

    @staticmethod
    def equal(current, wanted) -> bool:
        return same(current, wanted)

    def original(self):
        """What the journal keeps to restore: the value as found (JSON-able)."""
        return self.before

    def renewed_original(self, original):
        """The journaled original to hold before this run writes: the same, except where the
        record also proves which lines kvmtune added to a shared file (kvmtune.tune.lines)."""
        return original

    def settled_original(self, original):
        """The journaled original once this run has written (see renewed_original)."""
        return original

    def planned_dirs(self) -> tuple[str, ...]:
        """Directories this change may create: journaled before it runs."""
        return ()

    def record(self) -> dict:
        return {"type": self.KIND, **self.identity(), "original": self.original(),
                "dirs": list(self.planned_dirs())}

    def temp_paths(self, live: bool) -> list[tuple[str, str]]:
        """(path, allow-list op) of each temp file a killed write of this target may leave."""
        return []

    def shown(self, value) -> str | None:
        """A value as the report shows it (bytes that are not UTF-8 as U+FFFD)."""
        return None if value is None else printable(str(value))

    def to_json(self) -> dict:
        return {"target": self.target, "before": self.shown(self.before), "after": self.shown(self.after),
                "status": self.status, "detail": self.detail, "when": self.when}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target!r}, {self.before!r} -> {self.after!r}, {self.status})"


class Plan:
    """The ordered changes that would make the host match a profile (or its original)."""

    def __init__(self, profile, changes: list[Change], warnings: list[str]):
        self.profile = profile
        self.changes = changes
        self.warnings = warnings
        self.kept: list[str] = []  # journal keys a failed run's undo could not put back
        self.notes: dict = {}  # journal fields this run sets besides the records (tune.sections.PlanContext)
        self.shared: dict = {}  # what the sections handed each other (the KSM policy's decision)

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
                for svc in getattr(c, "restart", ()):
                    if svc not in out:
                        out.append(svc)
        return out
