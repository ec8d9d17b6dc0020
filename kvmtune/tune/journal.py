"""The journal (/var/lib/kvmtune/state.json): what kvmtune changed, and how to put it back.

Before the first write of a run the journal on disk names every target the run may touch,
with its original and the directories it may create (a target's temp file is named after
it, owned.temp_name), so rollback finds everything after a kill at any instant. An original
is recorded once and never overwritten: rollback returns the host to how it was before
kvmtune. ``run`` says whether the last apply, rollback or bench finished. A bench journals
here only while it runs (tune.journal_bench) and then puts back the state file it found.
The state directory (and var/, var/lib/ in a bare snapshot) is made whole in a staging
directory and renamed into place; forgetting renames it back out and removes it.

This module alone reads and writes the state file; check's readers (BLS boot arguments,
applied profiles) get a validated read-only view, so importing it stays cheap.
"""

from __future__ import annotations

import errno
import os

from kvmtune.errors import HostError, Refused, UsageError

VERSION = 2
RUNNING, COMPLETE = "running", "complete"
COMMANDS = ("apply", "rollback", "bench")
FIELDS = {"version", "run", "records", "state_dirs", "profiles", "bench", "ksm_policy"}
MAX_STATE = 16 << 20


class Journal:
    def __init__(self, data: dict | None = None):
        self.data = data or {"version": VERSION, "run": {"command": "apply", "status": COMPLETE},
                             "records": {}, "state_dirs": [], "profiles": []}

    @property
    def records(self) -> dict[str, dict]:
        return self.data["records"]

    @property
    def interrupted(self) -> str | None:
        """How the last run ended, if it did not: 'an apply (pid 123, 2026-11-26T12:00:00)'."""
        run = self.data["run"]
        if run.get("status") != RUNNING:
            return None
        return f"a {run.get('command')} (pid {run.get('pid', '?')}, started {run.get('started', '?')})"

    @property
    def bench(self) -> dict | None:
        """A running bench's section (tune.journal_bench), else None."""
        return self.data.get("bench")

    def begin(self, command: str, profile: str | None = None) -> None:
        import time
        if command != "bench":
            self.data.pop("bench", None)  # rollback puts back bench's changes with the rest
        self.data["run"] = {"command": command, "status": RUNNING, "pid": os.getpid(),
                            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if profile:  # the last applied comes last: watch verifies it
            self.data["profiles"] = [p for p in self.data["profiles"] if p != profile] + [profile]

    def finish(self) -> None:
        self.data["run"]["status"] = COMPLETE

    def record(self, change) -> bool:
        """Journal a change's original unless its target already has one; True if new."""
        if change.key in self.records:
            return False
        self.records[change.key] = change.record()
        return True


# -- reading ---------------------------------------------------------------------

def load(host) -> Journal | None:
    """The journal, checked against kvmtune's grammars and allow-list; None if there is none.

    Readers without the lock (plan, verify, rollback --check) may find it vanishing under
    a concurrent rollback: then there is none."""
    return load_found(host)[0]


def load_found(host):
    """(the journal or None, the state file as found: its text, mode and owner, or None)."""
    from kvmtune.host import owned

    try:
        state = host.path_state(owned.STATE_DIR)
    except HostError as exc:
        raise Refused(f"/{owned.STATE_FILE}: {exc.reason}: kvmtune's state is root's (run as root)") from None
    if state.link:
        raise Refused(f"/{state.link} is a symbolic link: kvmtune keeps its state only in a real directory")
    if state.missing:
        return None, None
    where = f"/{owned.STATE_FILE}"
    try:
        found = host.read_file_state(owned.STATE_FILE, MAX_STATE)
    except HostError as exc:
        if exc.errno in (errno.EINVAL, errno.EFBIG):  # a FIFO, device or huge file: never read
            raise UsageError(f"{where}: {exc.reason}: not kvmtune's state; move it aside to continue") from None
        raise Refused(f"{where}: {exc.reason}: kvmtune's state is root's (run as root)") from None
    if found is None:
        return None, None
    import json

    try:
        data = json.loads(found.text)
    except ValueError:
        raise UsageError(f"{where} is not valid JSON: move it aside to continue") from None
    try:
        return Journal(validate(data)), found
    except ValueError as exc:
        raise UsageError(f"{where} is not a state kvmtune wrote ({exc}): nothing was changed; "
                         "move it aside to continue") from None


def validate(data, kinds=None) -> dict:
    """The journal's data, or ValueError. ``kinds``: check's view, where only the records of
    those kinds are held to their grammar (the others only to be objects)."""
    from kvmtune.host import owned
    from kvmtune.tune.registry import check_record
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if data.get("version") == 1:
        from kvmtune.tune.journal_v1 import migrate
        data = migrate(data)
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
    if set(data) - FIELDS:
        raise ValueError(f"unknown fields {sorted(set(data) - FIELDS)}")
    run = data.get("run")
    if not isinstance(run, dict) or run.get("command") not in COMMANDS \
            or run.get("status") not in (RUNNING, COMPLETE):
        raise ValueError("run is not {command: apply|rollback|bench, status: running|complete}")
    if "bench" in data or run.get("command") == "bench":
        from kvmtune.tune.journal_bench import check_section
        check_section(data, validate)
    if "ksm_policy" in data:  # the KSM policy's last decision (tune.ksm_decide)
        from kvmtune.tune.ksm_decide import check_record as check_decision
        check_decision(data["ksm_policy"])
    records = data.get("records")
    if not isinstance(records, dict):
        raise ValueError("records is not an object")
    for key, record in records.items():
        if kinds is not None and isinstance(record, dict) and record.get("type") not in kinds:
            continue
        check_record(key, record)
    dirs = data.get("state_dirs", [])
    if not isinstance(dirs, list) or dirs != [d for d in owned.STATE_PARENTS if d in dirs]:
        raise ValueError(f"state_dirs {dirs!r} are not kvmtune's state directories")
    if not isinstance(data.get("profiles", []), list):
        raise ValueError("profiles is not a list")
    data.setdefault("state_dirs", [])
    data.setdefault("profiles", [])
    return data


# -- check's read-only view -------------------------------------------------------

# owned.STATE_FILE, spelled out: importing the allow-list (its regexes) costs check 10 ms; a test ties them.
STATE_FILE = "var/lib/kvmtune/state.json"


def read_records(host, kinds: tuple) -> tuple[tuple, str | None]:
    """(records of these kinds, problem) for check's readers: held to their kinds' grammar;
    () when there is no journal. A state that names none of them is not parsed (no json import)."""
    text, problem = _read_text(host)
    if not text or not any(f'"{kind}"' in text for kind in kinds):
        return (), problem
    data, problem = _checked(text, kinds)
    return tuple(r for r in data["records"].values() if r["type"] in kinds) if data else (), problem


def read_profiles(host) -> tuple[tuple, str | None]:
    """(names of the profiles applied here, problem) for check's readers; () without a journal."""
    text, problem = _read_text(host)
    data, problem = _checked(text, ()) if text else (None, problem)
    return tuple(p for p in data["profiles"] if isinstance(p, str)) if data else (), problem


def read_ksm_policy(host) -> tuple[dict | None, str | None]:
    """(the KSM policy's last decision, problem) for check's and the planner's readers."""
    text, problem = _read_text(host)
    data, problem = _checked(text, ()) if text and '"ksm_policy"' in text else (None, problem)
    return (data or {}).get("ksm_policy"), problem


def _read_text(host) -> tuple[str | None, str | None]:
    try:
        return host.read_optional(STATE_FILE), None
    except HostError as exc:
        return None, f"/{STATE_FILE}: {exc.reason}"


def _checked(text: str, kinds: tuple) -> tuple[dict | None, str | None]:
    import json
    try:
        return validate(json.loads(text), kinds), None
    except (ValueError, RecursionError) as exc:
        return None, f"/{STATE_FILE} is not a state kvmtune wrote ({str(exc)[:120]})"


# -- writing ---------------------------------------------------------------------

def _text(journal: Journal) -> str:
    import json
    return json.dumps(journal.data, indent=1, sort_keys=True) + "\n"


def save(host, journal: Journal) -> None:
    """Write the journal atomically; the first save makes the state directory whole first."""
    from kvmtune.host import owned

    missing = host.path_state(owned.STATE_DIR).missing
    if missing:
        journal.data["state_dirs"] = list(missing)
    text = _text(journal)
    if len(text) > MAX_STATE:  # the bound load() holds it to: never write a journal rollback refuses
        raise Refused(f"/{owned.STATE_FILE} would be larger than {MAX_STATE >> 20} MiB with the originals of "
                      "this run: nothing was changed")
    if not missing:
        host.write_file(owned.STATE_FILE, text, 0o600)
        return
    top = missing[0]
    parent = top.rpartition("/")[0]
    stage = f"{parent}/{owned.STAGE}" if parent else owned.STAGE
    if host.exists(stage):
        host.remove_tree(stage)
    inner = stage
    for d in missing:
        inner = stage + d[len(top):]
        host.mkdir(inner, 0o700 if d == owned.STATE_DIR else 0o755)
    host.write_file(f"{inner}/state.json", text, 0o600)
    host.rename_dir(stage, top)  # the commit point: the state exists from here on


def put_back(host, journal: Journal) -> None:
    """End a bench: the state file exactly as it found it (text, mode, owner), or none."""
    from kvmtune.host import owned
    found = journal.bench["found"]
    if found is None:
        return forget(host, journal)
    host.write_file(owned.STATE_FILE, found["text"], found["mode"], (found["uid"], found["gid"]))


def forget(host, journal: Journal) -> None:
    """Remove the journal, and the directories kvmtune made for it, as one rename."""
    from kvmtune.host import owned
    created = journal.data.get("state_dirs", [])
    top = next((d for d in created if _only_ours(host, d, created)), None)
    if top is None:
        host.remove(owned.STATE_FILE)
        for d in reversed(created):
            host.rmdir(d)
        return
    parent = top.rpartition("/")[0]
    stage = f"{parent}/{owned.STAGE}" if parent else owned.STAGE
    if host.exists(stage):
        host.remove_tree(stage)
    host.rename_dir(top, stage)  # from here on the state is gone
    host.remove_tree(stage)


def _only_ours(host, top: str, created: list[str]) -> bool:
    """Whether everything under ``top`` is the state chain and the state file."""
    from kvmtune.host import owned

    for d in created[created.index(top):]:
        expected = {n.rpartition("/")[2] for n in created if n.rpartition("/")[0] == d}
        if d == owned.STATE_DIR:
            expected = {"state.json"}
        found = set(host.listdir_nofollow(d)) - {owned.temp_name("state.json").lstrip("/")}
        if not found <= expected:
            return False
    return True


def clear_debris(host, journal: Journal | None) -> list[str]:
    """Remove what a killed run left: staged state directories and the temp files of every
    journaled target. Returns what was removed, for the report."""
    from kvmtune.host import owned

    removed = []
    for parent in ("", "var", "var/lib"):
        stage = f"{parent}/{owned.STAGE}" if parent else owned.STAGE
        if host.exists(stage):
            host.remove_tree(stage)
            removed.append(f"/{stage}")
    if host.clear_temp(owned.STATE_FILE, "file"):
        removed.append(f"/{owned.temp_name(owned.STATE_FILE)}")
    if journal is None:
        return removed
    from kvmtune.tune.registry import load_all
    kinds = load_all()
    for record in journal.records.values():
        for rel, op in kinds[record["type"]].from_record(record, None, None).temp_paths(host.live):
            if host.clear_temp(rel, op):
                removed.append(f"/{owned.temp_name(rel)}")
    if not host.live and host.clear_snapshot_mounts_temp():
        removed.append(f"/{owned.temp_name('proc/mounts')}")
    return removed
