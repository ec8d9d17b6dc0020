"""kvmtune's own shipped data (kvmtune/data), each file read once per process.

Not the host: these files come with kvmtune, so they are read here and not through the Host.
"""

from __future__ import annotations

import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
_LOADED: dict[str, dict] = {}


def load_data(name: str) -> dict:
    if name not in _LOADED:
        from kvmtune.fastjson import loads

        with open(os.path.join(DATA, name), encoding="utf-8") as fh:
            _LOADED[name] = loads(fh.read())
    return _LOADED[name]
