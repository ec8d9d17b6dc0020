"""Immutable fact records with class syntax, without the import cost.

``@dataclass`` builds each class by exec'ing generated code (about 1.2 ms per
class here) and ``typing.NamedTuple`` needs ``typing`` (5-10 ms): together more
than half of check's 70 ms budget. ``@record`` turns an annotated class into a
``collections.namedtuple`` subclass: immutable, hashable, cheap to create, and
it keeps the class's methods and properties.
"""

from __future__ import annotations

from collections import namedtuple

_SKIP = {"__dict__", "__weakref__", "__annotations__", "__module__", "__qualname__", "__doc__"}


def record(cls):
    fields = list(cls.__dict__.get("__annotations__", {}))
    defaults = [cls.__dict__[f] for f in fields if f in cls.__dict__]
    if any(f in cls.__dict__ for f in fields[: len(fields) - len(defaults)]):
        raise TypeError(f"{cls.__name__}: fields with defaults must come last")
    base = namedtuple(cls.__name__, fields, defaults=defaults)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in fields and k not in _SKIP}
    namespace.update(__slots__=(), __doc__=cls.__doc__, __module__=cls.__module__,
                     __qualname__=cls.__qualname__)
    return type(cls.__name__, (base,), namespace)
