"""Nothing kvmtune made is left without a record: an undo that fails keeps the journal entry of
what it could not put back, and one rollback removes every directory kvmtune created."""

import json
import os

from kvmtune.host.writable import WritableHost as Host
from tests.test_apply import apply, apply_with, root, tree  # noqa: F401 (root is a fixture)


def _profile(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_one_rollback_removes_the_directories_of_every_run_deepest_first(run_cli, root, tmp_path):
    original = tree(root)
    first = _profile(tmp_path, "a.yaml", "hugetlbfs:\n  - path: /mnt/a\n    pagesize: 2M\n")
    second = _profile(tmp_path, "b.yaml", "hugetlbfs:\n  - path: /mnt/b\n    pagesize: 2M\n")
    code, out, _ = apply(run_cli, root, "apply", first)
    assert code == 0 and os.path.isdir(os.path.join(root, "mnt/a")), out["msg"]
    code, out, _ = apply(run_cli, root, "apply", second)
    assert code == 0 and os.path.isdir(os.path.join(root, "mnt/b")), out["msg"]
    records = json.loads(Host(root).read("var/lib/kvmtune/state.json"))["records"]
    assert records["mount:/mnt/a"]["dirs"] == ["mnt", "mnt/a"] and records["mount:/mnt/b"]["dirs"] == ["mnt/b"]
    code, back, _ = apply(run_cli, root, "rollback")
    assert code == 0, back["msg"]
    assert not os.path.exists(os.path.join(root, "mnt")), "rollback left a directory kvmtune created"
    assert tree(root) == original


def test_a_created_directory_that_is_not_empty_is_left_with_its_contents(run_cli, root, tmp_path):
    first = _profile(tmp_path, "a.yaml", "hugetlbfs:\n  - path: /mnt/a\n    pagesize: 2M\n")
    code, out, _ = apply(run_cli, root, "apply", first)
    assert code == 0, out["msg"]
    with open(os.path.join(root, "mnt/notes"), "w") as f:
        f.write("the administrator's\n")
    code, back, _ = apply(run_cli, root, "rollback")
    assert code == 0, back["msg"]
    assert not os.path.exists(os.path.join(root, "mnt/a"))
    assert open(os.path.join(root, "mnt/notes")).read() == "the administrator's\n"


def _state(root):
    path = os.path.join(root, "var/lib/kvmtune/state.json")
    return json.loads(open(path).read())["records"] if os.path.exists(path) else None


def test_a_first_run_whose_undo_fails_keeps_the_record_of_what_stayed_changed(run_cli, root, tmp_path):
    from tests.support.faults import refuse_write
    from tests.test_apply import StingyHost

    profile = _profile(tmp_path, "p.yaml", "sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M: 1024\n")
    host = refuse_write(StingyHost(root), "proc/sys/vm/swappiness", "60")  # the pool fails, undo is refused
    plan = apply_with(host, profile, persist=False)
    status = {c.target: c for c in plan.changes}
    assert status["hugepages 2M"].status == "failed"
    assert "undo failed" in status["sysctl vm.swappiness"].detail
    assert Host(root).read("proc/sys/vm/swappiness") == "10\n"
    records = _state(root)
    assert records is not None, "the journal was forgotten while vm.swappiness stayed changed"
    assert set(records) == {"sysctl:vm.swappiness"} and records["sysctl:vm.swappiness"]["original"] == "60"
    assert any("vm.swappiness" in w and "rollback" in w for w in plan.warnings), plan.warnings
    code, back, _ = apply(run_cli, root, "rollback")
    assert code == 0 and Host(root).read("proc/sys/vm/swappiness") == "60\n", back["msg"]
    assert _state(root) is None


def test_a_later_run_whose_undo_fails_keeps_its_record_beside_the_earlier_ones(run_cli, root, tmp_path):
    from tests.support.faults import refuse_write
    from tests.test_apply import StingyHost

    first = _profile(tmp_path, "a.yaml", "sysctl:\n  net.ipv4.tcp_rmem: \"4096 65536 6291456\"\n")
    code, out, _ = apply(run_cli, root, "apply", first, "--no-persist")
    assert code == 0, out["msg"]
    second = _profile(tmp_path, "b.yaml", "sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M: 1024\n")
    plan = apply_with(refuse_write(StingyHost(root), "proc/sys/vm/swappiness", "60"), second, persist=False)
    assert any(c.status == "failed" for c in plan.changes)
    records = _state(root)
    # file:runtime: the first run's file naming its runtime-only sysctls, kept while they stay set.
    assert set(records) == {"file:runtime", "sysctl:net.ipv4.tcp_rmem", "sysctl:vm.swappiness"}, records
    assert not [k for k in records if k.startswith("pool:")]  # put back: nothing to remember


def test_an_undo_that_reports_success_but_did_not_put_it_back_keeps_the_record(root, tmp_path):
    """Read back, not trusted: a write that returns but leaves the value as it was."""
    from tests.test_apply import StingyHost

    class Deaf(StingyHost):
        def write(self, rel, value):
            if rel == "proc/sys/vm/swappiness" and str(value).strip() == "60":
                return  # accepted and ignored
            super().write(rel, value)

    profile = _profile(tmp_path, "p.yaml", "sysctl:\n  vm.swappiness: 10\nhugepages:\n  2M: 1024\n")
    plan = apply_with(Deaf(root), profile, persist=False)
    assert any(c.status == "failed" for c in plan.changes)
    swappiness = next(c for c in plan.changes if c.target == "sysctl vm.swappiness")
    assert swappiness.status == "changed" and "kept in the journal" in swappiness.detail
    assert set(_state(root) or ()) == {"sysctl:vm.swappiness"}
