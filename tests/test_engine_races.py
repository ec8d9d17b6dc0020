"""Two kvmtune runs at once: one lock, held from reading the state to the last write.

Deterministic cases pause one run inside the lock (at its first mutating call) and start
the other; the stress test runs rounds of eight parallel apply/rollback/verify and
checks, with a detector on flock, that no two processes ever held the lock together
and that a final rollback always finds every change recorded.
"""

import os
import random
import time

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.faults import fork_run
from tests.support.treestate import tree_diff, tree_state

FIRST = "sysctl:\n  vm.swappiness: 10\n"
SECOND = ("sysctl:\n  vm.swappiness: 20\n  vm.dirty_background_ratio: 3\nksm:\n  run: 1\n"
          "thp:\n  enabled: never\nhugetlbfs:\n  - {path: /dev/hugepages2M, pagesize: 2M}\n")

@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync guards against power loss, not against a killed process: these tests kill
    processes, hundreds of times, so they skip its cost (forked children inherit this)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture
def setup(tmp_path):
    files = synthetic_host()
    files["etc/fstab"] = "UUID=abc / ext4 defaults 0 1\n"
    root = write_tree(str(tmp_path / "host"), files)
    profiles = {}
    for name, text in (("first", FIRST), ("second", SECOND)):
        (tmp_path / f"{name}.yaml").write_text(text)
        profiles[name] = str(tmp_path / f"{name}.yaml")
    return root, profiles


def blocked_on_lock(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` sleeps in flock (its wait channel names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/wchan") as f:
                if "lock" in f.read():
                    return
        except OSError:
            pass
        time.sleep(0.02)
    time.sleep(0.3)  # no wait channel visible: give it time to reach the lock


def test_rollback_waiting_behind_an_apply_undoes_what_that_apply_did(setup, run_cli):
    root, profiles = setup
    original = tree_state(root)
    assert run_cli("--root", root, "apply", profiles["first"], "--json")[0] == 0
    apply = fork_run(["--root", root, "apply", profiles["second"], "--json"], pause_at=1, wait=False)
    apply.wait_paused()
    rollback = fork_run(["--root", root, "rollback", "--wait", "--json"], wait=False)
    blocked_on_lock(rollback.pid)
    apply.resume()
    assert apply.report()[0] == 0
    code, _, out = rollback.report()
    assert code == 0, out
    assert tree_state(root) == original, tree_diff(original, tree_state(root))


def test_apply_waiting_behind_a_rollback_records_against_the_state_it_finds(setup, run_cli):
    root, profiles = setup
    original = tree_state(root)
    assert run_cli("--root", root, "apply", profiles["first"], "--json")[0] == 0
    rollback = fork_run(["--root", root, "rollback", "--json"], pause_at=1, wait=False)
    rollback.wait_paused()
    apply = fork_run(["--root", root, "apply", profiles["second"], "--wait", "--json"], wait=False)
    blocked_on_lock(apply.pid)
    rollback.resume()
    assert rollback.report()[0] == 0
    code, _, out = apply.report()
    assert code == 0, out
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert tree_state(root) == original, tree_diff(original, tree_state(root))


def test_the_lock_survives_a_rollback_that_removes_the_state(setup, run_cli, tmp_path):
    """rollback deletes the state directory; a queued apply and a newcomer must still
    meet on one lock, never hold two."""
    root, profiles = setup
    marker = tmp_path / "locks"
    marker.mkdir()
    assert run_cli("--root", root, "apply", profiles["first"], "--json")[0] == 0
    rollback = fork_run(["--root", root, "rollback", "--json"], pause_at=1, wait=False, lock_dir=str(marker))
    rollback.wait_paused()
    queued = fork_run(["--root", root, "apply", profiles["second"], "--wait", "--json"], wait=False,
                      lock_dir=str(marker))
    blocked_on_lock(queued.pid)
    rollback.resume()
    newcomer = fork_run(["--root", root, "apply", profiles["first"], "--wait", "--json"], wait=False,
                        lock_dir=str(marker))
    results = [rollback.report(), queued.report(), newcomer.report()]
    assert all(code == 0 for code, _, _ in results), results
    assert not [p for p in os.listdir(marker) if p.startswith("violation")]


def test_parallel_rounds_never_lose_a_change_or_share_the_lock(setup, tmp_path, run_cli):
    root, profiles = setup
    original = tree_state(root)
    marker = tmp_path / "locks"
    marker.mkdir()
    rng = random.Random(8)
    commands = [["apply", profiles["first"], "--wait", "--json"], ["apply", profiles["second"], "--wait", "--json"],
                ["rollback", "--wait", "--json"], ["verify", profiles["second"], "--json"]]
    failures = []
    for round_no in range(100):
        children = [fork_run(["--root", root, *rng.choice(commands)], wait=False, lock_dir=str(marker))
                    for _ in range(8)]
        for child in children:
            code, _, out = child.report()
            if code not in (0, 1):
                failures.append((round_no, code, out[:200]))
        code, out, err = run_cli("--root", root, "rollback", "--json")
        if code != 0 or tree_state(root) != original:
            failures.append((round_no, "rollback", code, err[:200], tree_diff(original, tree_state(root), 4)))
            break
    violations = [p for p in os.listdir(marker) if p.startswith("violation")]
    assert not violations, f"two processes held the lock at once ({len(violations)} times)"
    assert not failures, failures[:5]


def test_readers_without_the_lock_survive_the_state_vanishing(setup, run_cli, monkeypatch):
    """plan and verify do not take the lock: a rollback may remove the state directory
    between their looking at it and reading it."""
    root, profiles = setup
    assert run_cli("--root", root, "apply", profiles["second"], "--json")[0] == 0
    real_listdir = os.listdir

    def vanishing(path=".", *a):
        if str(path).endswith("var/lib/kvmtune") or str(path).endswith("dev/hugepages2M"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_listdir(path, *a)

    monkeypatch.setattr(os, "listdir", vanishing)
    for argv in (("verify", profiles["second"]), ("plan", profiles["second"]), ("rollback", "--check")):
        code, out, err = run_cli("--root", root, *argv, "--json")
        assert code in (0, 1), (argv, code, err)
    monkeypatch.undo()
    assert run_cli("--root", root, "rollback", "--json")[0] == 0
