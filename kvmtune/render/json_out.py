"""Machine output: exactly one JSON object on stdout."""

from __future__ import annotations

import json
import sys


def write_json(obj: dict, stream=None) -> None:
    stream = stream or sys.stdout
    json.dump(obj, stream, indent=2, sort_keys=False)
    stream.write("\n")
