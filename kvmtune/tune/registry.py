"""The change kinds a journal may hold, each declared once by its subsystem.

A subsystem's change type declares, as tuned's plugins declare a getter/setter pair:
- ``KIND``: the journal's ``type``; ``FIELDS``: the identity fields, each held to its grammar;
- ``ORDER``: its place in apply's order (rollback runs the reverse);
- ``read_rollback(host, entries)``: the current values rollback plans against (TuneFacts fields);
- ``restore(entries, facts, warnings)``: the changes that put the journaled originals back;
- ``execute`` and ``undo``, and ``parse_original`` where the base's (any text apply read, bounded) does not fit.
From that the base derives the key, identity, parse_identity and from_identity, and the
journal derives its record grammar (``check_record``). ``@kind`` refuses at import a type that
leaves a piece out, so a section cannot be half-declared. This module imports no subsystem.
"""

from __future__ import annotations

KINDS: dict[str, type] = {}
_LOADED: list = []
# What every kind must define itself (not inherit from Change): the pieces rollback cannot guess.
REQUIRED = ("execute", "undo", "read_rollback", "restore", "target")


class Field:
    """One identity field of a record: its name, the attribute holding it, its grammar."""

    __slots__ = ("name", "attr", "ok", "what", "none")

    def __init__(self, name: str, ok, what: str, *, attr: str | None = None, none: str = "None"):
        self.name, self.ok, self.what, self.attr, self.none = name, ok, what, attr or name, none

    def parse(self, kind: str, value):
        if not self.ok(value):
            raise ValueError(f"{kind} {self.name} {value!r:.80} is not {self.what}")
        return value

    def key(self, value) -> str:
        return self.none if value is None else str(value)


def one_of(table) -> callable:
    return lambda value: isinstance(value, str) and value in table


def integer(low: int, high: int, optional: bool = False) -> callable:
    """An int in [low, high) (a bool is no number here); None too when optional."""
    return lambda value: (optional and value is None) or (
        isinstance(value, int) and not isinstance(value, bool) and low <= value < high)


def grammar(problem) -> callable:
    """A text that kvmtune.grammar's ``*_problem`` function finds nothing wrong with."""
    return lambda value: isinstance(value, str) and not problem(value)


def kind(cls):
    """Register a change type; TypeError if its declaration misses a piece (at import)."""
    name = cls.__dict__.get("KIND")
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} declares no KIND")
    if name in KINDS and KINDS[name] is not cls:
        raise TypeError(f"{cls.__name__}: kind {name!r} is already {KINDS[name].__name__}'s")
    from kvmtune.tune.change import Change

    mro = cls.__mro__
    for piece in ("FIELDS", "ORDER"):
        if _owner(mro, piece, Change) is None:
            raise TypeError(f"{cls.__name__} declares no {piece}")
    if not all(isinstance(f, Field) for f in cls.FIELDS) or not isinstance(cls.ORDER, int):
        raise TypeError(f"{cls.__name__}: FIELDS are registry.Field, ORDER its place in apply's order (an int)")
    for piece in REQUIRED:
        if _owner(mro, piece, Change) is None:
            raise TypeError(f"{cls.__name__} does not define {piece}(): every kind declares it")
    # A base that leaves a piece to its kinds (KnobChange: the file, ``rel``) names it.
    for base in [c for c in mro if "ALSO_REQUIRED" in c.__dict__]:
        for piece in base.ALSO_REQUIRED:
            if _owner(mro, piece, base) is None:
                raise TypeError(f"{cls.__name__} does not define {piece}: a {base.__name__} declares it")
    KINDS[name] = cls
    return cls


def _owner(mro: tuple, piece: str, base: type):
    """The class below ``base`` in ``mro`` that defines ``piece`` (None: only base or above does)."""
    owner = next((c for c in mro if piece in c.__dict__), None)
    return owner if owner is not None and mro.index(owner) < mro.index(base) else None


def load_all() -> dict[str, type]:
    """Every kind: each module of kvmtune.tune is imported, so a new subsystem's file is all
    it takes to be known (imported only where a journal is read: apply, rollback, verify)."""
    if _LOADED:
        return KINDS
    import importlib
    import pkgutil

    import kvmtune.tune as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _LOADED.append(True)  # once: check_record asks for every record
    return KINDS


def check_record(key: str, record) -> None:
    """ValueError naming what is wrong; nothing is acted on before every record passes."""
    if not isinstance(record, dict):
        raise ValueError(f"record {key!r} is not an object")
    cls = load_all().get(record.get("type"))
    if cls is None:
        raise ValueError(f"record {key!r} has an unknown type {record.get('type')!r}")
    extra = set(record) - {"type", "original", "dirs"} - {f.name for f in cls.FIELDS}
    if extra:
        raise ValueError(f"record {key!r} has unknown fields {sorted(extra)}")
    identity = cls.parse_identity(record)
    if cls.key_for(identity) != key:
        raise ValueError(f"record {key!r} does not name its own target ({cls.key_for(identity)!r})")
    cls.parse_original(record.get("original"))
    cls.parse_dirs(identity, record.get("dirs", []))


def by_kind(records: dict) -> list[tuple[type, list[tuple[str, dict]]]]:
    """(kind, [(key, record)]) in apply's order; records already checked."""
    kinds = load_all()
    groups: dict[str, list] = {}
    for key, record in records.items():
        groups.setdefault(record["type"], []).append((key, record))
    return sorted(((kinds[t], entries) for t, entries in groups.items()), key=lambda pair: pair[0].ORDER)
