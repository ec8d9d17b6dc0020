"""What the read phase hands to the judges and renderers: facts, never a Host.

Each fact is a value or Unknown (the reason it could not be read). A check that touches
an unknown fact gets FactUnknown, which the judge turns into the check's ``unknown``
status with that reason; a fact the check did not declare is an AttributeError, so a
check cannot quietly depend on more than it says (and --only reads only what it says).
"""

from __future__ import annotations

from kvmtune.record import record


@record
class Unknown:
    reason: str


class FactUnknown(Exception):
    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


class Facts:
    """Immutable: built once by kvmtune.checks.read, then only looked at."""

    __slots__ = ("root", "live", "as_user", "_values", "_allowed")

    def __init__(self, root: str, live: bool, as_user: str | None, values: dict, allowed=None):
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "live", live)
        object.__setattr__(self, "as_user", as_user)
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_allowed", None if allowed is None else frozenset(allowed))

    def __setattr__(self, name, value):
        raise AttributeError("facts are read once and never changed")

    def __getattr__(self, name: str):
        allowed = object.__getattribute__(self, "_allowed")
        values = object.__getattribute__(self, "_values")
        if allowed is not None and name not in allowed:
            raise AttributeError(f"fact {name!r} was not declared by this check")
        if name not in values:
            raise AttributeError(f"fact {name!r} was not read")
        value = values[name]
        if isinstance(value, Unknown):
            raise FactUnknown(name, value.reason)
        return value

    def node(self, name: str):
        return getattr(self, f"dev_{name}")

    def known(self, name: str):
        """The value if it was read and is known, else None (for renderers and optional hints)."""
        value = self._values.get(name)
        return None if isinstance(value, Unknown) else value

    def reason(self, name: str) -> str | None:
        value = self._values.get(name)
        return value.reason if isinstance(value, Unknown) else None

    @property
    def names(self) -> frozenset:
        return frozenset(self._values)

    def only(self, names) -> "Facts":
        """The view one check gets: just the facts it declared."""
        return Facts(self.root, self.live, self.as_user, self._values, names)

    def unknowns(self) -> dict[str, str]:
        return {k: v.reason for k, v in self._values.items() if isinstance(v, Unknown)}
