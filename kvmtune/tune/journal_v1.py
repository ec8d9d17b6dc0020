"""Read a state file of kvmtune 0.1 (version 1, keyed by host paths) as typed records.

Version 1 recorded originals under the host path written. Each path is matched against
the patterns kvmtune itself produced; a path that matches none (an edited file) makes
the whole state invalid rather than being guessed at.
"""

from __future__ import annotations

import re

from kvmtune.host.owned import OWNED_FILES, STATE_PARENTS

_RULES = (
    (re.compile(r"proc/sys/([A-Za-z0-9_][A-Za-z0-9_+@:-]*(?:/[A-Za-z0-9_][A-Za-z0-9_+@:-]*)*)"),
     lambda m: {"type": "sysctl", "name": m[1].replace("/", ".")}),
    (re.compile(r"sys/kernel/mm/hugepages/hugepages-([0-9]+)kB/nr_hugepages"),
     lambda m: {"type": "pool", "size_kb": int(m[1]), "node": None}),
    (re.compile(r"sys/devices/system/node/node([0-9]+)/hugepages/hugepages-([0-9]+)kB/nr_hugepages"),
     lambda m: {"type": "pool", "size_kb": int(m[2]), "node": int(m[1])}),
    (re.compile(r"sys/kernel/mm/ksm/([a-z_]+)"), lambda m: {"type": "ksm", "knob": m[1]}),
    (re.compile(r"sys/kernel/mm/transparent_hugepage/([a-z_]+)"), lambda m: {"type": "thp", "knob": m[1]}),
)


def migrate(data: dict) -> dict:
    """A version 2 journal from a version 1 state; ValueError on anything it cannot place."""
    from kvmtune.tune.registry import load_all

    kinds = load_all()

    for field, kind in (("values", dict), ("files", dict), ("mounts", dict), ("dirs", list), ("state_dirs", list)):
        if not isinstance(data.get(field, kind()), kind):
            raise ValueError(f"version 1 field {field!r} is not a {kind.__name__}")
    records: dict = {}
    for rel, original in data.get("values", {}).items():
        for pattern, make in _RULES:
            m = pattern.fullmatch(str(rel))
            if m:
                rec = make(m) | {"original": original, "dirs": []}
                break
        else:
            raise ValueError(f"version 1 value {rel!r} is not a knob kvmtune sets")
        records[kinds[rec["type"]].key_for(rec)] = rec
    by_path = {path: fid for fid, path in OWNED_FILES.items()}
    created = [d for d in data.get("dirs", []) if isinstance(d, str)]
    for rel, original in data.get("files", {}).items():
        if rel == "etc/fstab":
            records["fstab"] = {"type": "fstab", "original": original, "dirs": []}
        elif rel in by_path:
            text = original if isinstance(original, str) else None
            records[f"file:{by_path[rel]}"] = {
                "type": "file", "file": by_path[rel],
                "original": None if text is None else {"text": text, "mode": 0o644, "uid": 0, "gid": 0},
                "dirs": [d for d in created if rel.startswith(d + "/")]}
        else:
            raise ValueError(f"version 1 file {rel!r} is not one kvmtune writes")
    for path, rec in data.get("mounts", {}).items():
        if not isinstance(rec, dict):
            raise ValueError(f"version 1 mount {path!r} is not an object")
        records[f"mount:{path}"] = {"type": "mount", "path": path, "original": rec.get("was"),
                                    "dirs": rec.get("dirs", [])}
    state_dirs = data.get("state_dirs", [])
    if any(d not in STATE_PARENTS for d in state_dirs):
        raise ValueError(f"version 1 state_dirs {state_dirs!r} are not kvmtune's")
    return {"version": 2, "run": {"command": "apply", "status": "complete"}, "records": records,
            "state_dirs": state_dirs, "profiles": [p for p in data.get("profiles", []) if isinstance(p, str)]}
