"""What kvmtune changed, and what was there before: /var/lib/kvmtune/state.json.

The original of a value or file is recorded before kvmtune first changes it,
and never overwritten by a later apply, so rollback returns the host to how it
was before kvmtune, not before the last run. Written atomically; the directory
is also the lock that keeps two applies from interleaving.
"""

from __future__ import annotations

import json

from kvmtune.errors import HostError, KvmtuneError
from kvmtune.host import Host

STATE_DIR = "var/lib/kvmtune"
STATE_FILE = f"{STATE_DIR}/state.json"
VERSION = 1


class State:
    def __init__(self, data: dict | None = None):
        self.data = data or {"version": VERSION, "values": {}, "files": {}, "mounts": {},
                             "dirs": [], "state_dirs": [], "profiles": []}

    @property
    def values(self) -> dict[str, str | None]:
        return self.data["values"]

    @property
    def files(self) -> dict[str, str | None]:
        return self.data["files"]

    @property
    def mounts(self) -> dict[str, dict]:
        return self.data["mounts"]

    def record_value(self, rel: str, original) -> None:
        self.values.setdefault(rel, None if original is None else str(original))

    def record_file(self, rel: str, original: str | None) -> None:
        self.files.setdefault(rel, original)

    def record_dirs(self, created: list[str]) -> None:
        self.data["dirs"] += [d for d in created if d not in self.data["dirs"]]

    def save(self, host: Host) -> None:
        host.write_file(STATE_FILE, json.dumps(self.data, indent=1, sort_keys=True) + "\n", 0o600)


def load_state(host: Host) -> State | None:
    text = host.read_optional(STATE_FILE)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise KvmtuneError(f"/{STATE_FILE} is not valid JSON: move it aside to continue") from None
    if data.get("version") != VERSION:
        raise KvmtuneError(f"/{STATE_FILE} has version {data.get('version')}, expected {VERSION}")
    return State(data)


class Lock:
    """The state directory, flock'ed for the duration of an apply or rollback."""

    def __init__(self, host: Host, wait: bool):
        self.host, self.wait, self.fd, self.created = host, wait, None, []

    def __enter__(self) -> "Lock":
        self.created = self.host.makedirs(STATE_DIR, 0o700)
        try:
            self.fd = self.host.lock(STATE_DIR, self.wait)
        except HostError as exc:
            raise KvmtuneError(f"/{STATE_DIR}: {exc.reason} (use --wait to wait for it)") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.host.unlock(self.fd)
