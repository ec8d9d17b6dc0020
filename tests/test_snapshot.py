"""kvmtune snapshot: capture exactly what check reads, and judge it elsewhere the same way."""

import json
import os
import tarfile

import pytest

from tests.conftest import live_kvm

VOLATILE = {"MemFree", "MemAvailable", "AnonHugePages", "mem_free_kb", "pages_scanned", "full_scans",
            "pages_volatile", "pages_unshared", "general_profit"}


def steady(value):
    """A JSON value without the counters that move between two reads of a live host."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


@live_kvm
def test_a_snapshot_of_this_host_judges_like_the_host(run_cli, tmp_path):
    code, out, err = run_cli("snapshot", str(tmp_path / "snap"), "--json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["files"] > 50 and "dev/kvm" in manifest["nodes"]
    assert manifest["nodes"]["dev/kvm"]["major"] == 10 and manifest["nodes"]["dev/kvm"]["minor"] == 232
    _, live, _ = run_cli("check", "--json")
    code, snap, err = run_cli("--root", str(tmp_path / "snap"), "check", "--json")
    assert code in (0, 1), err
    live, snap = json.loads(live), json.loads(snap)
    live["host"]["cpu"].pop("kvm_features", None)
    for report in (live, snap):
        report["host"].pop("root"), report["host"].pop("live")
    assert steady(live["host"]) == steady(snap["host"])
    live_checks, snap_checks = ({c["id"]: c for c in r["checks"]} for r in (live, snap))
    for check_id, check in live_checks.items():
        if check_id in ("kvm.access", "kvm.functional"):
            assert snap_checks[check_id]["status"] == "skip"
            assert snap_checks[check_id]["detail"] == "not available in a snapshot"
        elif check_id == "guests":  # processes are never captured: another process's data
            assert snap_checks[check_id]["detail"] == "the snapshot holds no process table: guests not judged"
        elif check_id != "ready":
            assert snap_checks[check_id]["status"] == check["status"], check_id
            if check_id != "cpu.virt":
                assert steady(snap_checks[check_id]) == steady(check), check_id


@live_kvm
def test_only_what_check_reads_is_captured(run_cli, tmp_path, monkeypatch):
    from kvmtune.host.door import Host

    code, out, err = run_cli("snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    captured = {os.path.relpath(os.path.join(d, f), tmp_path / "snap")
                for d, _, files in os.walk(tmp_path / "snap") for f in files} - {"kvmtune-snapshot.json"}
    read = set()
    real = Host.read
    monkeypatch.setattr(Host, "read", lambda self, rel, *a, **k: read.add(rel) or real(self, rel, *a, **k))
    from kvmtune.checks.intents import INTENTS
    run_cli("check", "--json", "--for", ",".join(INTENTS))  # the snapshot serves every intent
    monkeypatch.undo()
    assert not [p for p in captured if p.startswith(("etc/shadow", "etc/gshadow", "proc/self", "dev/kmsg"))]
    assert not [p for p in captured if p.split("/")[:2][-1].isdigit() and p.startswith("proc/")]
    extra = captured - read
    # Beyond check's reads, only what check looked at (module initstate files for built-in or not).
    assert all(p.endswith("/initstate") for p in extra), sorted(extra)[:10]


def test_a_snapshot_of_a_snapshot_is_the_same_host(run_cli, host_roots, tmp_path):
    root = str(host_roots["synthetic-1024cpu-16node"])
    code, out, err = run_cli("--root", root, "snapshot", "--tar", str(tmp_path / "big.tar.gz"))
    assert code == 0, err
    with tarfile.open(tmp_path / "big.tar.gz") as tar:
        names = tar.getnames()
        assert "kvmtune-snapshot.json" in names and "proc/cpuinfo" in names
        assert all(m.uid == 0 and not m.issym() and not m.isdev() for m in tar.getmembers())
        tar.extractall(tmp_path / "copy", filter="data")
    _, original, _ = run_cli("--root", root, "check", "--json")
    _, copy, _ = run_cli("--root", str(tmp_path / "copy"), "check", "--json")
    original, copy = json.loads(original), json.loads(copy)
    original["host"]["root"] = copy["host"]["root"] = "<root>"
    assert original == copy


@pytest.mark.parametrize("argv, message", [
    (["snapshot"], "name a directory"),
    (["snapshot", "DIR", "--tar", "x.tar"], "name a directory"),
    (["snapshot", "NONEMPTY"], "exists and is not an empty directory"),
])
def test_bad_snapshot_requests_are_usage_errors(argv, message, run_cli, tmp_path):
    (tmp_path / "NONEMPTY").mkdir()
    (tmp_path / "NONEMPTY" / "x").write_text("x")
    argv = [str(tmp_path / a) if a in ("DIR", "NONEMPTY") else a for a in argv]
    code, out, err = run_cli(*argv)
    assert code == 2 and message in err
    assert not (tmp_path / "DIR").exists()
