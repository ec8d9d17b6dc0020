"""The fleet loader: the same answers over one CPU or several, fields cut to what a command
reads, and a failing worker never hidden nor left behind."""

import json
import os

import pytest

from kvmtune.errors import KvmtuneError
from kvmtune.fleet.fanout import fan_out
from kvmtune.fleet.load import ALL, EACH, SHARED, cutter, load_results


def _no_children_left():
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_fan_out_keeps_the_order_and_uses_other_processes():
    out = fan_out(lambda share: [(x, os.getpid()) for x in share], list(range(11)), 3)
    assert [x for x, _ in out] == list(range(11))
    assert len({pid for _, pid in out}) == 3 and out[0][1] == os.getpid()
    _no_children_left()


def test_a_worker_that_fails_is_an_error_not_a_shorter_answer():
    def work(share):
        if os.getpid() != parent:
            raise ValueError("bad share")
        return share

    parent = os.getpid()
    with pytest.raises(KvmtuneError, match="a worker reading results failed: ValueError: bad share"):
        fan_out(work, list(range(6)), 2)
    _no_children_left()


def test_a_worker_killed_is_an_error():
    def work(share):
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)
        return share

    parent = os.getpid()
    with pytest.raises(KvmtuneError, match="killed by signal 9"):
        fan_out(work, list(range(6)), 2)
    _no_children_left()


def test_the_parent_failing_leaves_no_child_behind():
    def work(share):
        if os.getpid() == parent:
            raise RuntimeError("parent fails")
        return share

    parent = os.getpid()
    with pytest.raises(RuntimeError):
        fan_out(work, list(range(6)), 2)
    _no_children_left()


def test_cutter_keeps_only_the_fields_asked_and_shares_equal_lists():
    cut = cutter({"a": ALL, "b": {EACH: {"x": ALL}}, "c": [{"id": ALL}], "f": SHARED})
    memo = {}
    one = cut({"a": 1, "b": {"k": {"x": 1, "y": 2}}, "c": [{"id": "i", "big": [1] * 9}, 5], "f": ["s"], "z": 0}, memo)
    two = cut({"f": ["s"], "c": "not a list"}, memo)
    assert one == {"a": 1, "b": {"k": {"x": 1}}, "c": [{"id": "i"}, 5], "f": ["s"]}
    assert two == {"f": ["s"], "c": "not a list"}  # a value of another shape is kept for the command to judge
    assert one["f"] is two["f"]


def test_one_cpu_and_two_give_the_same_results(tmp_path):
    for i in range(9):
        (tmp_path / f"r{i}").write_text(json.dumps({"schema_version": 1, "checks": [], "host": {"hostname": f"h{i}"}}))
    (tmp_path / "bad").write_text("{")
    spec = {"host": {"hostname": ALL}}
    one = load_results([str(tmp_path)], spec, workers=1)
    two = load_results([str(tmp_path)], spec, workers=2, min_per_worker=1)
    assert one == two and len(two) == 10
    assert [x.hostname for x in two if x.error is None] == [f"h{i}" for i in range(9)]
    assert two[0].error.startswith("not JSON")
    _no_children_left()


def test_report_is_the_same_over_one_cpu_or_two(run_cli, host_roots, tmp_path, monkeypatch):
    from kvmtune.fleet import load

    for name in ("synthetic-intel-vtx", "synthetic-no-dev-kvm", "synthetic-hugepage-pools"):
        code, out, _ = run_cli("--root", str(host_roots[name]), "check", "--json")
        (tmp_path / name).write_text(out)
    _, alone, _ = run_cli("report", str(tmp_path), "--json")
    monkeypatch.setattr(load, "MIN_PER_WORKER", 1)
    monkeypatch.setattr(load, "cpus", lambda: 2)
    _, shared, _ = run_cli("report", str(tmp_path), "--json")
    assert json.loads(alone) == json.loads(shared) and json.loads(alone)["counts"]["hosts"] == 3
