"""Machine output: exactly one JSON object on stdout."""

from __future__ import annotations

import json
import sys


def write_json(obj: dict, stream=None) -> None:
    """Indented for a person at a terminal; compact otherwise, where json's C encoder
    runs (indent= forces the pure-Python one, 5x slower on a 1024-CPU host)."""
    stream = stream or sys.stdout
    pretty = hasattr(stream, "isatty") and stream.isatty()
    stream.write(json.dumps(obj, indent=2 if pretty else None) + "\n")
