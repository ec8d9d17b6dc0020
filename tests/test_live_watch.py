"""watch on the live kernel: drift made behind kvmtune's back (a sysctl with a later drop-in, KSM
run, an IRQ's affinity) is named with its owner, put back by --reapply, and found gone by the next
pass; everything is rolled back, and a finalizer puts back what the test saved even on failure."""

import glob
import json
import os
import subprocess

import pytest

from tests.test_live_apply import read

SYSCTL = "/proc/sys/vm/swappiness"
KSM = "/sys/kernel/mm/ksm"
DROPIN = "/etc/sysctl.d/99-zzzz-kvmtune-watch-test.conf"  # sorts after kvmtune's 99-zz-kvmtune.conf
FILES = ("/etc/sysctl.d/99-zz-kvmtune.conf", "/etc/tmpfiles.d/kvmtune.conf", "/var/lib/kvmtune/state.json",
         "/etc/systemd/system/kvmtune-watch.service", "/etc/systemd/system/kvmtune-watch.timer", DROPIN)


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(f"{KSM}/run", os.W_OK) or not os.access(SYSCTL, os.W_OK):
        return "KSM or /proc/sys is not writable here"
    if os.path.exists("/var/lib/kvmtune/state.json"):
        return "kvmtune has a journal on this machine: the test would mix with it"
    return None


pytestmark = [pytest.mark.live, pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def state() -> dict:
    knobs = [SYSCTL, f"{KSM}/run", f"{KSM}/pages_to_scan", "/proc/irq/default_smp_affinity",
             *sorted(glob.glob("/proc/irq/*/smp_affinity_list"))]
    return {"knobs": {k: read(k) for k in knobs}, "files": {f: read(f) for f in FILES},
            "state_dir": os.path.isdir("/var/lib/kvmtune")}


@pytest.fixture
def live():
    saved = state()
    yield saved
    if os.path.exists(DROPIN):
        os.unlink(DROPIN)
    if state() != saved:
        subprocess.run(["python", "-m", "kvmtune", "rollback", "--json"], capture_output=True, check=False)
    for path, value in saved["knobs"].items():  # last resort: by hand
        if read(path) != value and value is not None:
            try:
                write(path, value.strip())
            except OSError:
                pass
    assert state() == saved, "the live host was not restored"


def test_drift_is_named_restored_and_gone(live, tmp_path, run_cli):
    swappiness = int(live["knobs"][SYSCTL])
    wanted = swappiness + 7 if swappiness < 90 else swappiness - 7
    profile = tmp_path / "watched.yaml"
    profile.write_text(f"""
sysctl:
  vm.swappiness: {wanted}
ksm:
  run: 1
  pages_to_scan: 200
cpus:
  housekeeping: {{per_node: 1}}
  nohz_full: false
  rcu_nocbs: false
  managed_irq: false
  irqaffinity: true
  irqbalance: false
  systemd: false
  workqueue: false
""")
    code, out, err = run_cli("apply", str(profile), "--json")
    applied = json.loads(out)
    assert code == 0, (applied["msg"], err)
    refused = {c["target"] for c in applied["changes"] if c["status"] == "pending-reboot"}
    moved = [c["target"] for c in applied["changes"] if c["target"].startswith("irq ") and c["status"] == "changed"]
    if not moved:
        pytest.skip("no IRQ here lets its affinity be moved")
    irq = moved[0].split()[1]

    # Behind kvmtune's back: a later drop-in and its value, KSM stopped, an IRQ spread again.
    write(DROPIN, f"# a site's own setting\nvm.swappiness = {swappiness}\n")
    write(SYSCTL, str(swappiness))
    write(f"{KSM}/run", "0")
    write(f"/proc/irq/{irq}/smp_affinity_list", live["knobs"][f"/proc/irq/{irq}/smp_affinity_list"].strip())

    code, out, _ = run_cli("verify", str(profile), "--json")
    found = {t["target"]: t for t in json.loads(out)["targets"]}
    assert code == 1
    assert found["sysctl vm.swappiness"]["status"] == "drifted" and found["sysctl vm.swappiness"]["have"] == str(swappiness)
    assert found["sysctl vm.swappiness"]["owner"].startswith(f"{DROPIN}:2 sets vm.swappiness = {swappiness}")
    assert (found["ksm run"]["status"], found["ksm run"]["have"]) == ("drifted", "0")
    assert found[f"irq {irq} affinity"]["status"] == "drifted"

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    code, out, err = run_cli("watch", "--once", "--reapply", str(profile), "--metrics-dir", str(metrics), "--json")
    result = json.loads(out)
    restored = {r["target"]: r for r in result["restored"]}
    assert {"sysctl vm.swappiness", "ksm run", f"irq {irq} affinity"} <= set(restored), (result["msg"], err)
    assert restored["sysctl vm.swappiness"]["owner"].startswith(DROPIN)
    assert int(read(SYSCTL)) == wanted and read(f"{KSM}/run").strip() == "1"
    assert read(f"/proc/irq/{irq}/smp_affinity_list").strip() == "0"
    assert (metrics / "kvmtune-verify.prom").exists()
    if not (os.path.exists("/dev/log") or os.path.exists("/run/systemd/journal/socket")):
        assert err.count("not logged") == 1

    code, out, _ = run_cli("watch", "--once", str(profile), "--metrics-dir", str(metrics), "--json")
    again = json.loads(out)
    left = {t["target"] for t in again["targets"] if t["status"] in ("drifted", "missing")}
    assert again["restored"] == [] and left <= refused, left  # only what the kernel never let kvmtune move
    assert code == (1 if left else 0)

    os.unlink(DROPIN)
    code, out, _ = run_cli("rollback", "--json")
    assert code == 0, json.loads(out)["msg"]


def test_install_enables_the_timer_where_systemd_is_pid_1(live, run_cli):
    from kvmtune.host.door import Host
    from kvmtune.watch.units import TIMER_UNIT, systemd_runs

    if not systemd_runs(Host("/")):
        pytest.skip("systemd is not PID 1 here (no /run/systemd/system): 'watch --install' leaves the timer "
                    "disabled and prints the cron line (tests/test_watch.py checks the units it writes)")
    code, out, _ = run_cli("watch", "--install", "dense", "--json")
    try:
        assert code == 0 and "enabled and started" in json.loads(out)["msg"]
        enabled = subprocess.run(["systemctl", "is-enabled", TIMER_UNIT], capture_output=True, text=True)
        assert enabled.stdout.strip() == "enabled"
    finally:
        subprocess.run(["systemctl", "disable", "--now", TIMER_UNIT], capture_output=True)
        run_cli("rollback", "--json")
