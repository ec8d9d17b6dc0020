"""A running bench's part of the journal: the state file it found, and its own originals.

bench changes at most a pool's total and KSM's run. While it runs, the journal's
``bench`` section keeps the state file exactly as the bench found it (text, mode,
owner; None if there was none) and bench's originals of what it changed, which join
the journal's ``records`` only where no original is recorded yet: an apply's original
is never overwritten, so rollback still returns the host to before kvmtune, while the
next bench returns it to before that bench. tune.journal reads and writes the file;
this module, a floor below it, holds the section's grammar and how a bench fills it.
"""

from __future__ import annotations

import json

BENCH_TYPES = ("pool", "ksm")  # a pool's total, KSM's run


def check_section(data: dict, validate) -> None:
    """ValueError naming what is wrong with a journal's bench section (a running bench has
    one, nothing else has); ``validate``: the journal's own check, which ``found`` passes too."""
    if ("bench" in data) != (data["run"].get("command") == "bench" and data["run"].get("status") == "running"):
        raise ValueError("a bench section belongs to a running bench, and only there")
    if "bench" not in data:
        return
    section = data["bench"]
    if not isinstance(section, dict) or set(section) != {"found", "records"}:
        raise ValueError("bench is not {found, records}")
    found = section["found"]
    if found is not None:
        if not isinstance(found, dict) or set(found) != {"text", "mode", "uid", "gid"} \
                or not isinstance(found["text"], str) \
                or any(not isinstance(found[k], int) or isinstance(found[k], bool) or found[k] < 0
                       for k in ("mode", "uid", "gid")) or found["mode"] > 0o7777:
            raise ValueError("bench.found is not a state file's {text, mode, uid, gid}")
        try:
            inner = validate(json.loads(found["text"]))
        except ValueError as exc:
            raise ValueError(f"bench.found is not a state kvmtune wrote ({exc})") from None
        if inner["run"]["status"] != "complete":
            raise ValueError("bench.found is an interrupted run's state")
    records = section["records"]
    if not isinstance(records, dict):
        raise ValueError("bench.records is not an object")
    from kvmtune.tune.registry import check_record

    for key, record in records.items():
        check_record(key, record)
        if record["type"] not in BENCH_TYPES or record.get("node") is not None \
                or (record["type"] == "ksm" and record.get("knob") != "run"):
            raise ValueError(f"bench.records {key!r} is not a pool total or KSM's run")


def begin(journal, found) -> None:
    """Run a bench under ``journal``; ``found``: the state file as the bench found it (host
    FileState), kept whole to be put back, or None."""
    journal.begin("bench")
    journal.data["bench"] = {"found": None if found is None else found.to_json(), "records": {}}


def record(journal, change) -> bool:
    """Journal bench's original of a change (True if new): in the bench section always, in
    ``records`` only where none is recorded (an apply's is never overwritten)."""
    own = journal.bench["records"]
    if change.key in own:
        return False
    own[change.key] = change.record()
    journal.record(change)
    return True
