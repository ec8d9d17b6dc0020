"""kvmtune snapshot: capture exactly what check reads, and judge it elsewhere the same way."""

import json
import os
import tarfile
from pathlib import Path

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
    for key in ("tsc_khz", "tsc_source", "tsc_scaling"):  # KVM's own answers: only a live host gives them
        live["host"]["migration"].pop(key), snap["host"]["migration"].pop(key)
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
        elif check_id == "memory.overcommit":  # the running guests' RAM, like the guests themselves
            assert snap_checks[check_id]["detail"].endswith("running guests not available in a snapshot")
        elif check_id != "ready":
            assert snap_checks[check_id]["status"] == check["status"], check_id
            if check_id not in ("cpu.virt", "memory.fragmentation"):  # free blocks move between two reads
                assert steady(snap_checks[check_id]) == steady(check), check_id


@live_kvm
def test_only_what_check_and_plan_read_is_captured(run_cli, tmp_path, monkeypatch):
    from kvmtune.host.door import Host
    from kvmtune.host.writable import WritableHost
    from kvmtune.profile import load_profile
    from kvmtune.tune.facts import read_for_profile

    code, out, err = run_cli("snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    captured = {os.path.relpath(os.path.join(d, f), tmp_path / "snap")
                for d, _, files in os.walk(tmp_path / "snap") for f in files} - {"kvmtune-snapshot.json"}
    read = set()
    real, real_state = Host.read_bytes, Host.read_file_state  # read and the exact reads go through read_bytes
    monkeypatch.setattr(Host, "read_bytes", lambda self, rel, *a, **k: read.add(rel) or real(self, rel, *a, **k))
    monkeypatch.setattr(Host, "read_file_state",
                        lambda self, rel, *a, **k: read.add(rel) or real_state(self, rel, *a, **k))
    from kvmtune.checks.intents import INTENTS
    run_cli("check", "--json", "--for", ",".join(INTENTS))  # the snapshot serves every intent
    for profile in PROFILES:  # plan's read phase, without the journal (captured only as check reads it)
        read_for_profile(WritableHost("/"), load_profile(profile), persist=True)  # it only reads here
    monkeypatch.undo()
    assert not [p for p in captured if p.startswith(("etc/shadow", "etc/gshadow", "proc/self", "dev/kmsg"))]
    assert not [p for p in captured if p.split("/")[:2][-1].isdigit() and p.startswith("proc/")]
    # The kernel log is never read from the tree on the live host: its clock lines are kept apart.
    extra = captured - read - {"kvmtune-kernel-log"}
    # Beyond those reads, only what was looked at (module initstate files for built-in or not), captured empty.
    assert all(p.endswith("/initstate") for p in extra), sorted(extra)[:10]
    assert all((tmp_path / "snap" / p).read_text() == "" for p in extra)


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


# -- plan on a snapshot: the capture holds what planning reads --------------------------------

PROFILES = sorted(p.stem for p in (Path(__file__).parent.parent / "profiles").glob("*.yaml"))


def test_a_snapshot_of_this_machine_plans_every_shipped_profile(run_cli, tmp_path):
    code, out, err = run_cli("snapshot", str(tmp_path / "snap"), "--json")  # only reads the live host
    assert code == 0, err
    state = tmp_path / "snap/var/lib/kvmtune/state.json"
    if state.exists():  # another apply's journal, captured with check's reads: not what is tested here
        state.unlink()
    for profile in PROFILES:
        code, out, err = run_cli("--root", str(tmp_path / "snap"), "plan", profile, "--json")
        assert code == 0, (profile, err)
        assert json.loads(out)["changes"], profile


def test_a_snapshot_of_a_tree_plans_every_shipped_profile_as_the_tree_does(run_cli, tmp_path):
    from tests.fixtures.synthetic import host, write_tree

    files = host()
    files.update({"proc/irq/default_smp_affinity": "ff\n", "sys/devices/virtual/workqueue/cpumask": "ff\n",
                  "sys/module/kvm/parameters/kvmclock_periodic_sync": "Y\n",
                  "sys/module/kvm_intel/parameters/ple_gap": "128\n", "etc/fstab": "UUID=1 / ext4 defaults 0 1\n"})
    source = write_tree(str(tmp_path / "host"), files)
    code, _, err = run_cli("--root", source, "snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    for profile in PROFILES:
        plans = []
        for root in (source, str(tmp_path / "snap")):
            code, out, err = run_cli("--root", root, "plan", profile, "--json")
            assert code == 0, (profile, root, err)
            plans.append(json.loads(out))
        # The one difference a snapshot states: it holds no processes, so no kernel threads to move.
        from kvmtune.tune.kthreads import NOT_CAPTURED

        if NOT_CAPTURED in plans[1]["warnings"]:
            plans[1]["warnings"].remove(NOT_CAPTURED)
            assert profile == "pinned"
        assert plans[0] == plans[1], profile


def _captured(run_cli, tmp_path, drop=()):
    from tests.fixtures.synthetic import host, write_tree

    files = host()
    for rel in drop:
        del files[rel]
    source = write_tree(str(tmp_path / "host"), files)
    code, _, err = run_cli("--root", source, "snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    return tmp_path / "snap"


def test_a_knob_the_snapshot_did_not_capture_is_not_in_this_snapshot(run_cli, tmp_path):
    snap = _captured(run_cli, tmp_path)
    (snap / "proc/sys/vm/swappiness").unlink()  # as a capture that only took what check reads
    code, out, err = run_cli("--root", str(snap), "plan", "kvm-host")
    assert code == 2
    assert "sysctl.vm.swappiness: not in this snapshot (/proc/sys/vm/swappiness was not captured" in err
    assert "no such sysctl on this host" not in err


def test_a_knob_the_captured_host_lacks_is_still_no_such_sysctl(run_cli, tmp_path):
    snap = _captured(run_cli, tmp_path, drop=("proc/sys/vm/swappiness",))
    manifest = json.loads((snap / "kvmtune-snapshot.json").read_text())
    assert "proc/sys/vm/swappiness" in manifest["absent"]  # looked for, not there
    code, out, err = run_cli("--root", str(snap), "plan", "kvm-host")
    assert code == 2 and "no such sysctl on this host" in err


def test_a_snapshot_from_before_plan_reads_says_not_in_this_snapshot(run_cli, tmp_path):
    snap = _captured(run_cli, tmp_path)
    manifest = json.loads((snap / "kvmtune-snapshot.json").read_text())
    del manifest["absent"]  # as the capture of an older kvmtune wrote it
    (snap / "kvmtune-snapshot.json").write_text(json.dumps(manifest))
    (snap / "proc/sys/vm/dirty_background_ratio").unlink()
    code, out, err = run_cli("--root", str(snap), "plan", "kvm-host")
    assert code == 2 and "sysctl.vm.dirty_background_ratio: not in this snapshot" in err


def test_a_file_only_looked_at_is_captured_empty(run_cli, tmp_path):
    from tests.fixtures.synthetic import host, write_tree

    files = host()
    files.update({"etc/default/grub": 'GRUB_CMDLINE_LINUX=""\n', "usr/sbin/update-grub": "#!/bin/sh\nexec grub-mkconfig\n"})
    source = write_tree(str(tmp_path / "host"), files)
    assert run_cli("--root", source, "snapshot", str(tmp_path / "snap"))[0] == 0
    assert (tmp_path / "snap/usr/sbin/update-grub").read_text() == ""  # its presence is the fact
    from kvmtune.host.door import Host
    from kvmtune.probe.boot_loader import read_boot_loader

    assert read_boot_loader(Host(str(tmp_path / "snap"))).kind == "grub"
