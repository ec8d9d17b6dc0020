"""The shape of a bench result (schema_version 1), checked before --compare trusts a file.

kvmtune/schema/bench.schema.json says the same for other tools; this check needs no
jsonschema at run time and stops at the first thing that does not fit.
"""

from __future__ import annotations

import os
import stat

from kvmtune.errors import UsageError

MAX_BYTES = 16 << 20

TOP = {"schema_version": int, "host": dict, "settings": dict, "memory": list, "exits": (dict, type(None)),
       "native": list, "ksm": (dict, type(None)), "emulated": (bool, type(None)), "warnings": list,
       "changes": list, "skipped": dict}
MEMORY_ROW = {"backing": str, "guest_page": str, "ns_per_access": (dict, type(None)),
              "ratio_vs_4k": (float, int, type(None)), "first_touch_ms": (float, int, type(None)),
              "skipped": (str, type(None))}
SUMMARY = ("median", "min", "max")
NOISE_DETOURS = ("max", "p999", "p9999")


def validate(result) -> str | None:
    """None if ``result`` is a version-1 bench result, else what is wrong."""
    if not isinstance(result, dict):
        return "not a JSON object"
    if result.get("schema_version") != 1:
        return f"schema_version {str(result.get('schema_version'))[:20]}, expected 1"
    for key, kind in TOP.items():
        if key not in result:
            return f"no {key!r}"
        if not isinstance(result[key], kind):
            return f"{key!r} has the wrong type"
    for i, row in enumerate(result["memory"]):
        if not isinstance(row, dict):
            return f"memory[{i}] is not an object"
        for key, kind in MEMORY_ROW.items():
            if not isinstance(row.get(key), kind) or (key not in row):
                return f"memory[{i}].{key} is missing or has the wrong type"
        ns = row["ns_per_access"]
        if ns is not None and not all(isinstance(ns.get(k), (int, float)) for k in SUMMARY):
            return f"memory[{i}].ns_per_access needs median, min and max"
    for i, row in enumerate(result["native"]):
        if not isinstance(row, dict) or not isinstance(row.get("backing"), str):
            return f"native[{i}] is not a row with a backing"
    return _noise_problem(result.get("noise"))


def _noise_problem(noise) -> str | None:
    """A noise section (results from before it have none) has the rows --compare reads."""
    if noise is None:
        return None
    if not isinstance(noise, dict) or not isinstance(noise.get("cpus"), dict):
        return "noise is not an object with cpus"
    for cpu, row in noise["cpus"].items():
        if not isinstance(row, dict) or "error" in row:
            continue
        detours = row.get("detours_us")
        if (not isinstance(detours, dict) or not all(isinstance(detours.get(k), (int, float)) for k in NOISE_DETOURS)
                or not isinstance(row.get("lost_ppm"), (int, float)) or not isinstance(row.get("intruders"), list)
                or not isinstance(row.get("irqs_per_s"), dict)
                or not all(isinstance(v, (int, float)) for v in row["irqs_per_s"].values())
                or not all(isinstance(t, dict) and isinstance(t.get("runs"), int) for t in row["intruders"])):
            return f"noise.cpus[{cpu}] needs detours_us (max, p999, p9999), lost_ppm, irqs_per_s and intruders"
    return None


def load(path: str) -> dict:
    """A bench --json result file (the user's input, not the host's); UsageError naming it otherwise."""
    import json

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise UsageError(f"{path}: not a regular file")
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a bench result")
    try:
        result = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not JSON ({str(exc)[:80]})") from None
    problem = validate(result)
    if problem:
        raise UsageError(f"{path}: not a kvmtune bench result: {problem}")
    return result
