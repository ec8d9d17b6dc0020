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
import re

BENCH_TYPES = ("pool", "ksm")  # a pool's total, KSM's run
# The osnoise tracer's files (bench.osnoise), as their texts read before the first write: a
# kill -9 in the tracer's window runs no ``finally``, so rollback puts them back from here.
TRACEFS = ("sys/kernel/tracing", "sys/kernel/debug/tracing")
_CPUS = r"(?:\d{1,5}(?:-\d{1,5})?(?:,\d{1,5}(?:-\d{1,5})?)*)?"
TRACER_FILES = {"osnoise/cpus": re.compile(_CPUS + "\n"), "tracing_on": re.compile("[01]\n"),
                "current_tracer": re.compile("[a-z_]{1,64}\n")}


def check_section(data: dict, validate) -> None:
    """ValueError naming what is wrong with a journal's bench section (a running bench has
    one, nothing else has); ``validate``: the journal's own check, which ``found`` passes too."""
    if ("bench" in data) != (data["run"].get("command") == "bench" and data["run"].get("status") == "running"):
        raise ValueError("a bench section belongs to a running bench, and only there")
    if "bench" not in data:
        return
    section = data["bench"]
    if not isinstance(section, dict) or set(section) - {"tracer"} != {"found", "records"}:
        raise ValueError("bench is not {found, records[, tracer]}")
    if "tracer" in section:
        check_tracer(section["tracer"])
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


def check_tracer(tracer) -> None:
    """ValueError unless ``tracer`` is [{file, original}, ...] in the order written: the osnoise
    files of one tracefs, each once, each original a text that file reads as."""
    if not isinstance(tracer, list) or not tracer or len(tracer) > len(TRACER_FILES):
        raise ValueError("bench.tracer is not a list of the osnoise tracer's files")
    seen, bases = set(), set()
    for entry in tracer:
        if not isinstance(entry, dict) or set(entry) != {"file", "original"} \
                or not all(isinstance(entry[k], str) for k in entry):
            raise ValueError("bench.tracer entry is not {file, original}")
        base, name = next(((b, entry["file"][len(b) + 1:]) for b in TRACEFS
                           if entry["file"].startswith(b + "/")), (None, None))
        if name not in TRACER_FILES or entry["file"] in seen:
            raise ValueError(f"bench.tracer file {entry['file']!r} is not an osnoise tracer file, once")
        if not TRACER_FILES[name].fullmatch(entry["original"]):
            raise ValueError(f"bench.tracer {entry['file']!r}: {entry['original']!r} is not a value it reads as")
        seen.add(entry["file"])
        bases.add(base)
    if len(bases) > 1:
        raise ValueError("bench.tracer names files of two tracefs mounts")


def put_back_tracer(host, saved: list) -> tuple[list[str], list[str]]:
    """Write back the osnoise files ``saved`` holds ((file, text before) in the order written),
    newest first (the tracer stops before its CPUs change); each is re-read, written only if it
    differs, and read back. Empties ``saved``: (what was put back, problems), as sentences."""
    from kvmtune.errors import HostError

    done, problems = [], []
    while saved:
        rel, before = saved.pop()
        try:
            now = host.read(rel)
            if now != before:
                host.write(rel, before.rstrip("\n"))
                done.append(f"/{rel} {now.strip()!r} -> {before.strip()!r}")
                now = host.read(rel)
        except HostError as exc:
            problems.append(f"/{rel} could not be put back to {before.strip()!r}: {exc.reason}")
            continue
        if now != before:
            problems.append(f"/{rel} was {before.strip()!r} before the run and is {now.strip()!r} now")
    return done, problems


def rollback_tracer(host, journal) -> list[str]:
    """Rollback's first step: the osnoise files a killed bench left, put back and read back
    (what was put back, as sentences), before the bench section goes with ``begin``. What
    does not read back stops the rollback with the journal kept (HostError)."""
    from kvmtune.errors import HostError

    saved = tracer_saved(journal.bench or {})
    first = saved[-1][0] if saved else ""
    done, problems = put_back_tracer(host, saved)
    if problems:
        raise HostError(first, "the osnoise tracer could not be put back: " + "; ".join(problems))
    return [f"put back the osnoise tracer a killed bench left: {d}" for d in done]


def tracer_pending(host, journal) -> list[str]:
    """What rollback would put back of the osnoise files a killed bench left (rollback --check)."""
    out = []
    for rel, before in tracer_saved(journal.bench or {}):
        now = host.read_optional(rel)
        if now != before:
            out.append(f"would put back the osnoise tracer a killed bench left: /{rel} "
                       f"{(now or '').strip()!r} -> {before.strip()!r}")
    return out[::-1]  # newest first, as it would be written


def tracer_saved(section: dict) -> list:
    """The journaled osnoise files as put_back_tracer takes them."""
    return [(e["file"], e["original"]) for e in section.get("tracer", [])]


def journal_tracer(journal, saved: list) -> None:
    """Keep ``saved`` (the osnoise files written so far and their texts before) in the bench
    section; an empty list clears it."""
    if saved:
        journal.bench["tracer"] = [{"file": rel, "original": before} for rel, before in saved]
    else:
        journal.bench.pop("tracer", None)


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
