"""verify's targets and owners, its metrics, and watch (--once, --reapply, --install) on trees."""

import json
import os

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree


def test_a_profile_keeps_its_own_name_whatever_its_sysctls():
    """The journal's profiles (verify's and watch's default) are the names profiles load as."""
    from kvmtune.profile import load_profile, load_profile_text

    assert load_profile("dense").name == "dense"
    assert load_profile("latency").name == "latency"
    assert load_profile_text("sysctl: {vm.swappiness: 10}\n").name != "vm.swappiness"


PROFILE = """
description: watch test
sysctl:
  vm.swappiness: 10
hugepages:
  2M: 4
ksm:
  run: 1
  pages_to_scan: 500
"""


@pytest.fixture
def tuned(tmp_path, run_cli):
    """A synthetic host with PROFILE applied: (root, profile path, run)."""
    files = synthetic_host()
    files["proc/sys/vm/swappiness"] = "60\n"
    files["etc/fstab"] = "UUID=abc / ext4 errors=remount-ro 0 1\n"
    root = write_tree(str(tmp_path / "host"), files)
    profile = tmp_path / "watched.yaml"
    profile.write_text(PROFILE)

    def run(*argv):
        return run_cli("--root", root, *argv)

    code, out, err = run("apply", str(profile), "--json")
    assert code == 0, (out, err)
    return root, str(profile), run


def put(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def get(root, rel):
    with open(os.path.join(root, rel)) as f:
        return f.read()


def targets(out: str) -> dict:
    return {t["target"]: t for t in json.loads(out)["targets"]}


def test_verify_json_lists_every_target_with_status_and_owner(tuned):
    root, profile, run = tuned
    code, out, _ = run("verify", profile, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["profile"] == "watched" and result["profiles"] == ["watched"]
    assert {t["status"] for t in result["targets"]} == {"ok"}
    assert targets(out)["sysctl vm.swappiness"] == {"target": "sysctl vm.swappiness", "want": "10", "have": "10",
                                                     "status": "ok", "owner": None}
    # Behind kvmtune's back: a later drop-in and the value it sets; KSM stopped; kvmtune's tmpfiles file removed.
    put(root, "etc/sysctl.d/99-zzz-local.conf", "# site settings\nvm.swappiness = 33\n")
    put(root, "proc/sys/vm/swappiness", "33\n")
    put(root, "sys/kernel/mm/ksm/run", "0\n")
    os.unlink(os.path.join(root, "etc/tmpfiles.d/kvmtune.conf"))
    code, out, _ = run("verify", profile, "--json")
    assert code == 1
    found = targets(out)
    assert found["sysctl vm.swappiness"]["status"] == "drifted" and found["sysctl vm.swappiness"]["have"] == "33"
    assert found["sysctl vm.swappiness"]["owner"].startswith("/etc/sysctl.d/99-zzz-local.conf:2 sets vm.swappiness = 33")
    assert found["ksm run"] == {"target": "ksm run", "want": "1", "have": "0", "status": "drifted", "owner": None}
    assert found["/etc/tmpfiles.d/kvmtune.conf"]["status"] == "missing"
    assert json.loads(out)["changes"]  # beside today's keys, not instead of them


def test_verify_defaults_to_the_profile_applied_last(tuned, tmp_path):
    root, profile, run = tuned
    assert run("apply", "dense", "--json")[0] == 0
    code, out, _ = run("verify", "--json")
    assert json.loads(out)["profile"] == "dense" and json.loads(out)["profiles"] == ["watched", "dense"]
    assert run("apply", profile, "--json")[0] == 0  # again: last again
    code, out, err = run("verify", "--json")
    assert code == 2 and "came from a file" in json.loads(out)["msg"] + err


def test_verify_prometheus_is_written_atomically(tuned, tmp_path):
    root, profile, run = tuned
    put(root, "sys/kernel/mm/ksm/run", "0\n")
    out_file = tmp_path / "verify.prom"
    code, out, _ = run("verify", profile, "--format", "prometheus", "--output", str(out_file))
    assert code == 1 and out == ""
    text = out_file.read_text()
    assert 'kvmtune_verify_drifted{target="ksm run",profile="watched"} 1\n' in text
    assert 'kvmtune_verify_drifted{target="sysctl vm.swappiness",profile="watched"} 0\n' in text
    assert 'kvmtune_verify_targets{status="drifted"} 1\n' in text
    assert 'kvmtune_verify_targets{status="missing"} 0\n' in text
    assert 'kvmtune_profile_applied{profile="watched"} 1\n' in text
    stamp = float(text.split("\nkvmtune_verify_last_run_timestamp_seconds ")[1].split()[0])
    assert abs(stamp - __import__("time").time()) < 60
    assert os.listdir(tmp_path).count("verify.prom") == 1 and not [n for n in os.listdir(tmp_path) if "tmp" in n]


def test_watch_once_reapply_restores_runtime_knobs_and_not_files(tuned, tmp_path):
    root, profile, run = tuned
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    journal_before = json.loads(get(root, "var/lib/kvmtune/state.json"))["records"]
    put(root, "proc/sys/vm/swappiness", "33\n")
    put(root, "sys/kernel/mm/ksm/run", "0\n")
    dropin = get(root, "etc/sysctl.d/99-zz-kvmtune.conf")
    put(root, "etc/sysctl.d/99-zz-kvmtune.conf", dropin.replace("= 10", "= 11"))
    code, out, err = run("watch", "--once", profile, "--metrics-dir", str(metrics))  # reporting only
    assert code == 1 and get(root, "proc/sys/vm/swappiness") == "33\n"
    assert "DRIFTED          sysctl vm.swappiness  has 33, wants 10" in out
    assert err.count("not logged") == 1
    assert 'kvmtune_verify_targets{status="drifted"} 3' in (metrics / "kvmtune-verify.prom").read_text()

    code, out, err = run("watch", "--once", "--reapply", profile, "--metrics-dir", str(metrics), "--json")
    result = json.loads(out)
    assert sorted(r["target"] for r in result["restored"]) == ["ksm run", "sysctl vm.swappiness"]
    assert get(root, "proc/sys/vm/swappiness").strip() == "10" and get(root, "sys/kernel/mm/ksm/run").strip() == "1"
    assert "= 11" in get(root, "etc/sysctl.d/99-zz-kvmtune.conf")  # a file is the operator's to settle
    assert code == 1 and [t["target"] for t in result["targets"] if t["status"] != "ok"] == [
        "/etc/sysctl.d/99-zz-kvmtune.conf"]
    # Through the engine: the originals journaled before kvmtune's first apply stay as they were.
    assert json.loads(get(root, "var/lib/kvmtune/state.json"))["records"] == journal_before
    put(root, "etc/sysctl.d/99-zz-kvmtune.conf", dropin)
    code, out, _ = run("watch", "--once", profile, "--metrics-dir", str(metrics), "--json")
    assert code == 0 and json.loads(out)["restored"] == [] and json.loads(out)["msg"] == "in place"
    assert 'kvmtune_verify_targets{status="ok"}' in (metrics / "kvmtune-verify.prom").read_text()


def test_watch_reapply_waits_for_the_lock_like_apply(tuned, tmp_path):
    """--reapply writes through the engine: under its lock (a held lock is exit 5, busy)."""
    root, profile, run = tuned
    put(root, "proc/sys/vm/swappiness", "33\n")
    from kvmtune.host.writable import WritableHost

    host = WritableHost(root)
    fd = host.lock(False)
    try:
        code, out, err = run("watch", "--once", "--reapply", profile, "--metrics-dir", str(tmp_path))
    finally:
        host.unlock(fd)
    assert code == 5 and get(root, "proc/sys/vm/swappiness") == "33\n", (out, err)


def test_watch_needs_once_or_install(tuned):
    root, profile, run = tuned
    assert run("watch", profile)[0] == 2
    assert run("watch", "--once", "--interval", "5min", profile)[0] == 2
    assert run("watch", "--install", "--once")[0] == 2


# -- owners, judged on facts ---------------------------------------------------------

def _facts(**kw):
    from kvmtune.watch.owners import OwnerFacts

    return OwnerFacts(**kw)


def test_owner_of_names_ksmtuned_irqbalance_and_the_kernel():
    from kvmtune.tune.cpus import IrqChange
    from kvmtune.tune.ksm import KsmChange
    from kvmtune.tune.pools import PoolChange
    from kvmtune.watch.owners import owner_of

    run = KsmChange("run", "0", "1")
    assert owner_of(run, _facts()) is None
    assert owner_of(run, _facts(pids={"ksmtuned": 812})).startswith("ksmtuned (pid 812) rewrites KSM run")
    assert owner_of(KsmChange("merge_across_nodes", "1", "0"), _facts(pids={"ksmtuned": 812})) is None
    irq = IrqChange(41, "0-1", "0")
    assert owner_of(irq, _facts(pids={"irqbalance": 700})).startswith("irqbalance (pid 700) runs without kvmtune's ban")
    assert owner_of(irq, _facts(pids={"irqbalance": 700}, irqbalance_ban="1")) is None
    pool = PoolChange(1 << 20, 1, "3", "4", boot=True)
    booted_after = _facts(booted=2000.0, applied=1000.0)
    assert owner_of(pool, booted_after) == "the kernel: boot-time allocation got 3 of 4 1G pages on node 1"
    assert owner_of(pool, _facts(booted=500.0, applied=1000.0)) is None  # shrunk since apply: nobody to name
    assert owner_of(PoolChange(2048, None, "5", "4"), booted_after) is None  # larger, not short


def test_owner_of_a_sysctl_is_the_last_later_file_that_sets_another_value():
    from kvmtune.tune.sysctl import SysctlChange
    from kvmtune.watch.owners import owner_of

    change = SysctlChange("vm.swappiness", "33", "10")
    lines = (("/etc/sysctl.d/99-zzz-a.conf:1", "vm.swappiness", "33"), ("/etc/sysctl.d/99-zzz-b.conf:4", "vm.swappiness", "10"),
             ("/usr/lib/sysctl.d/99-zzzz.conf:7", "vm.swappiness", "40"), ("/etc/sysctl.d/99-zzz-a.conf:2", "vm.other", "1"))
    assert owner_of(change, _facts(sysctl_lines=lines)).startswith("/usr/lib/sysctl.d/99-zzzz.conf:7 sets vm.swappiness = 40")
    assert owner_of(change, _facts(sysctl_lines=lines[1:2])) is None  # it sets kvmtune's own value


def test_an_active_tuned_profile_is_read_from_tuned_files(tmp_path):
    from kvmtune.host.door import Host
    from kvmtune.tune.ksm import KsmChange
    from kvmtune.tune.sysctl import SysctlChange
    from kvmtune.tune.thp import ThpChange
    from kvmtune.watch.owners import owner_of
    from kvmtune.watch.tuned import read_tuned

    root = write_tree(str(tmp_path / "host"), {
        "etc/tuned/active_profile": "site\n",
        "etc/tuned/site/tuned.conf": "[main]\ninclude=virtual-host\n\n[my_sysfs]\ntype=sysfs\n"
                                     "/sys/kernel/mm/ksm/run = 0  # no KSM here\n",
        "usr/lib/tuned/virtual-host/tuned.conf": "[main]\nsummary=x\n[sysctl]\nvm.swappiness=10\n"
                                                  "vm.dirty_background_ratio = 5\n[vm]\ntransparent_hugepages=never\n",
        "usr/lib/tuned/site/tuned.conf": "[sysctl]\nvm.swappiness=99\n",  # /etc's copy wins
    })
    facts = _facts(tuned=read_tuned(Host(root)))
    assert owner_of(SysctlChange("vm.swappiness", "10", "30"), facts) == (
        "tuned profile 'site' (/usr/lib/tuned/virtual-host/tuned.conf:4: vm.swappiness=10)")
    assert "/etc/tuned/site/tuned.conf:6" in owner_of(KsmChange("run", "0", "1"), facts)
    assert "transparent_hugepages=never" in owner_of(ThpChange("enabled", "never", "madvise"), facts)
    assert owner_of(SysctlChange("vm.overcommit_memory", "1", "0"), facts) is None
    assert owner_of(SysctlChange("vm.swappiness", "30", "10"), facts) is None  # tuned sets kvmtune's value
    assert read_tuned(Host(str(tmp_path))) == ()  # no tuned: nobody


def test_statuses_of_targets():
    from kvmtune.tune.by_hand import ByHandChange
    from kvmtune.tune.change import REBOOT
    from kvmtune.tune.files import FileChange, wanted
    from kvmtune.tune.irqbalance import IrqbalanceChange
    from kvmtune.tune.sysctl import SysctlChange
    from kvmtune.watch.targets import status_of

    assert status_of(SysctlChange("vm.swappiness", "10", "10")) == "ok"
    assert status_of(SysctlChange("vm.swappiness", "33", "10")) == "drifted"
    assert status_of(SysctlChange("vm.swappiness", None, "10")) == "missing"
    assert status_of(FileChange("sysctl", None, wanted("x\n"))) == "missing"
    assert status_of(FileChange("grub", wanted("y\n"), wanted("x\n"), when=REBOOT)) == "drifted"
    assert status_of(ByHandChange("CPU isolation", ["isolcpus=1"], ())) == "pending-reboot"
    edited = IrqbalanceChange("etc/default/irqbalance", "A=1\n", "A=2\n")
    assert status_of(edited) == "drifted"  # someone edited kvmtune's line out of the file
    in_file = IrqbalanceChange("etc/default/irqbalance", "A=2\n", "A=2\n")
    assert status_of(in_file) == "ok" and status_of(in_file, _facts(pids={"tuned": 9})) == "ok"
    assert status_of(in_file, _facts(pids={"irqbalance": 700})) == "pending-restart"  # started before the line
    assert status_of(in_file, _facts(pids={"irqbalance": 700}, irqbalance_ban="1-7")) == "ok"


def test_reapply_takes_runtime_knobs_only():
    from kvmtune.tune.files import FileChange, wanted
    from kvmtune.tune.ksm import KsmChange, KsmUnmerge
    from kvmtune.tune.pools import PoolChange
    from kvmtune.tune.sysctl import SysctlChange
    from kvmtune.watch.targets import is_target, runtime

    assert runtime(SysctlChange("vm.swappiness", "33", "10")) and runtime(KsmChange("run", "0", "1"))
    assert runtime(PoolChange(2048, None, "2", "4"))
    assert not runtime(PoolChange(1 << 20, 0, "3", "4", boot=True))  # the boot reservation's
    assert not runtime(FileChange("sysctl", None, wanted("x\n")))
    assert not is_target(KsmUnmerge("1", "2"))


# -- watch --install ------------------------------------------------------------------

UNITS = ("etc/systemd/system/kvmtune-watch.service", "etc/systemd/system/kvmtune-watch.timer")


def test_install_writes_journaled_units_that_rollback_removes(tuned, tmp_path):
    root, profile, run = tuned
    code, out, err = run("watch", "--install", "--interval", "10min", "--reapply", profile, "--json")
    result = json.loads(out)
    assert code == 0 and result["changed"] is True, (out, err)
    assert result["units"] == ["/" + u for u in UNITS]
    assert "not enabled" in result["msg"] and result["cron"].startswith("*/10 * * * * root ")
    assert result["cron"].endswith(f"watch --once --reapply {profile}")
    service, timer = (get(root, u) for u in UNITS)
    assert "Type=oneshot\n" in service and f"watch --once --reapply {profile}\n" in service
    assert "OnUnitActiveSec=10min\n" in timer and "WantedBy=timers.target\n" in timer
    records = json.loads(get(root, "var/lib/kvmtune/state.json"))["records"]
    assert records["file:watch-service"]["original"] is None and records["file:watch-timer"]["original"] is None
    assert json.loads(run("watch", "--install", "--interval", "10min", "--reapply", profile, "--json")[1])[
        "changed"] is False  # a second install: in place
    code, out, _ = run("rollback", "--json")
    assert code == 0 and not any(os.path.exists(os.path.join(root, u)) for u in UNITS)
    assert not os.path.exists(os.path.join(root, "etc/systemd"))  # made for the units, gone with them


def test_install_refuses_an_interval_cron_and_systemd_would_read_apart(tuned):
    root, profile, run = tuned
    for bad in ("5", "5m", "0min", "1.5h", "5 min", "1d"):
        code, out, err = run("watch", "--install", "--interval", bad)
        assert code == 2 and "--interval" in err, bad
    assert not os.path.exists(os.path.join(root, UNITS[0]))


def test_installed_units_pass_systemd_analyze_verify(tuned):
    import shutil
    import subprocess

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    root, profile, run = tuned
    assert run("watch", "--install", "--reapply", "--metrics-dir", "/var/tmp/metrics dir", profile)[0] == 0
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no"] + [os.path.join(root, u) for u in UNITS],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert '--metrics-dir "/var/tmp/metrics dir"' in get(root, UNITS[0])


def test_contrib_units_are_what_install_writes_for_a_packaged_kvmtune():
    from pathlib import Path

    from kvmtune.watch.units import PACKAGED, unit_texts

    contrib = Path(__file__).parent.parent / "contrib" / "systemd"
    texts = unit_texts([PACKAGED], "5min", False, None, None)
    assert (contrib / "kvmtune-watch.service").read_text() == texts["watch-service"]
    assert (contrib / "kvmtune-watch.timer").read_text() == texts["watch-timer"]


# -- the system journal ----------------------------------------------------------------

@pytest.mark.parametrize("rel", ["run/systemd/journal/socket", "dev/log"])
def test_drift_lines_reach_the_journal_tagged_kvmtune(tmp_path, rel):
    import socket

    from kvmtune.host.door import Host

    os.makedirs(tmp_path / os.path.dirname(rel))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(tmp_path / rel))
        used = Host(str(tmp_path), live=True).send_log("kvmtune", ["sysctl vm.swappiness drifted", "ksm run\ndrifted"])
        first, second = listener.recv(4096).decode(), listener.recv(4096).decode()
    assert used == "/" + rel
    if rel == "dev/log":
        assert first == f"<12>kvmtune[{os.getpid()}]: sysctl vm.swappiness drifted"
    else:
        assert first == "SYSLOG_IDENTIFIER=kvmtune\nPRIORITY=4\nMESSAGE=sysctl vm.swappiness drifted\n"
    assert "ksm run drifted" in second  # one line per message, always


def test_no_journal_socket_is_said_once_and_reporting_carries_on(tmp_path, capsys):
    from kvmtune.commands import watch
    from kvmtune.errors import HostError
    from kvmtune.host.door import Host

    with pytest.raises(HostError):
        Host(str(tmp_path), live=True).send_log("kvmtune", ["x"])
    assert watch._log(str(tmp_path), ["a", "b", "c"], host=Host(str(tmp_path), live=True)) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not logged" in err and "/dev/log" in err


# -- the memory policy's hook ----------------------------------------------------------

def test_the_memory_policy_runs_only_where_the_profile_has_one(monkeypatch, tmp_path):
    import sys
    import types

    from kvmtune.commands.watch import memory_policy

    calls = []
    fake = types.ModuleType("kvmtune.tune.ksm_policy")
    fake.apply = lambda host, profile, wait=False: calls.append((host.root, profile, wait)) or "outcome"
    monkeypatch.setitem(sys.modules, "kvmtune.tune.ksm_policy", fake)
    assert memory_policy(str(tmp_path), types.SimpleNamespace(ksm_policy=None), False) is None
    assert memory_policy(str(tmp_path), types.SimpleNamespace(), False) is None
    with_policy = types.SimpleNamespace(ksm_policy=object())
    assert memory_policy(str(tmp_path), with_policy, True) == "outcome"
    assert calls == [(str(tmp_path), with_policy, True)]


def test_watch_of_a_no_persist_apply_asks_for_no_boot_files(tmp_path, run_cli):
    files = synthetic_host()
    root = write_tree(str(tmp_path / "host"), files)
    profile = tmp_path / "runtime.yaml"
    profile.write_text("ksm: {run: 1}\n")
    assert run_cli("--root", root, "apply", str(profile), "--no-persist", "--json")[0] == 0
    code, out, err = run_cli("--root", root, "watch", "--once", str(profile), "--metrics-dir", str(tmp_path), "--json")
    assert code == 0 and [t["target"] for t in json.loads(out)["targets"]] == ["ksm run"], (out, err)
