"""Immutable fact records with class syntax, without the import cost.

``@dataclass`` builds each class by exec'ing generated code (about 1.2 ms per class
here), ``typing.NamedTuple`` needs ``typing`` (5-10 ms), and even ``namedtuple`` evals
a constructor (0.17 ms a class, 4 ms for check's twenty-odd records). ``@record`` turns
an annotated class into a tuple subclass with C field accessors and one shared
constructor: immutable, hashable, about 20 us to define, and it keeps the class's
methods and properties. Like namedtuple's, a record equals a tuple of its values.
"""

from __future__ import annotations

from operator import itemgetter

_SKIP = {"__dict__", "__weakref__", "__annotations__", "__module__", "__qualname__", "__doc__"}


def _new(cls, *args, **kwargs):
    fields = cls._fields
    if len(args) > len(fields):
        raise TypeError(f"{cls.__name__} takes {len(fields)} fields, got {len(args)}")
    if len(args) < len(fields) or kwargs:
        values = list(args)
        for name in fields[len(args):]:
            if name in kwargs:
                values.append(kwargs.pop(name))
            elif name in cls._defaults:
                values.append(cls._defaults[name])
            else:
                raise TypeError(f"{cls.__name__} needs {name!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__} has no field {next(iter(kwargs))!r}")
        args = values
    return tuple.__new__(cls, args)


def _replace(self, **changes):
    values = [changes.pop(f, v) for f, v in zip(self._fields, self)]
    if changes:
        raise TypeError(f"{type(self).__name__} has no field {next(iter(changes))!r}")
    return type(self)(*values)


def _asdict(self) -> dict:
    return dict(zip(self._fields, self))


def _repr(self) -> str:
    return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in zip(self._fields, self))})"


def record(cls):
    fields = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {f: cls.__dict__[f] for f in fields if f in cls.__dict__}
    if any(f in defaults for f in fields[: len(fields) - len(defaults)]):
        raise TypeError(f"{cls.__name__}: fields with defaults must come last")
    namespace = {k: v for k, v in cls.__dict__.items() if k not in fields and k not in _SKIP}
    namespace.update({f: property(itemgetter(i)) for i, f in enumerate(fields)})
    namespace.update(__slots__=(), __doc__=cls.__doc__, __module__=cls.__module__,
                     __qualname__=cls.__qualname__, _fields=fields, _defaults=defaults,
                     __new__=_new, _replace=_replace, _asdict=_asdict, __repr__=_repr,
                     __getnewargs__=lambda self: tuple(self))
    return type(cls.__name__, (tuple,), namespace)
