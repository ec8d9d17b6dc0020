"""JSON through CPython's C accelerator (_json) directly, without importing ``json``.

``import json`` pulls in ``re`` and with it ``enum``: about 12 ms here, more than all of
kvmtune's own work in ``check``. The json package is only a wrapper around the same C
encoder and scanner, so check and its data files use them straight; indented output
(a person at a terminal) and interpreters without _json fall back to ``json`` itself.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - not CPython
    _json = None


def _no_default(obj):
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj, indent: int | None = None) -> str:
    if indent is not None or _json is None:
        import json

        return json.dumps(obj, indent=indent)
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan)
    encode = _json.make_encoder(None, _no_default, _json.encode_basestring_ascii, None, ": ", ", ",
                                False, False, True)
    return "".join(encode(obj, 0))


class _Context:
    """What the C scanner asks of a decoder (json.JSONDecoder's attributes, defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict = {}


def loads(text: str):
    if _json is None:  # pragma: no cover
        import json

        return json.loads(text)
    ctx = _Context()
    ctx.memo = {}
    ctx.parse_constant = _constant
    scan = _json.make_scanner(ctx)
    end = _skip(text, 0)
    try:
        value, end = scan(text, end)
    except StopIteration:
        raise ValueError("not JSON") from None
    if _skip(text, end) != len(text):
        raise ValueError(f"extra data at character {end}")
    return value


def _constant(name: str):
    return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i
