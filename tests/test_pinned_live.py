"""Live: the runtime parts of pinned's quieting (the writeback cpumask, movable kernel threads,
tuned's sysctls) applied on this machine's kernel, and rollback restores every affinity exactly.
The boot arguments stay pending (--no-persist: nothing is written for the next boot)."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import live_state
from tests.test_pinned_tuning import QUIET_SYSCTLS

WRITEBACK = Path("/sys/devices/virtual/workqueue/writeback/cpumask")
SYSCTLS = ("kernel/timer_migration", "kernel/hung_task_timeout_secs", "vm/stat_interval", "kernel/nmi_watchdog")
PROFILE = """
cpus:
  housekeeping: {per_node: 1}
  irqaffinity: false
  irqbalance: false
  systemd: false
  workqueue: false
  writeback: true
  kthreads: true
boot: {nosoftlockup: true, skew_tick: 1}
""" + QUIET_SYSCTLS


def _kthreads() -> dict:
    """pid -> (name, stat flags, CPUs) of every kernel thread now."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            flags = int(fields[6])
            if flags & 0x00200000:
                out[int(entry)] = (name, flags, frozenset(os.sched_getaffinity(int(entry))))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _state() -> dict:
    return {"writeback": WRITEBACK.read_text(),
            "sysctls": {k: Path("/proc/sys", k).read_text() for k in SYSCTLS if Path("/proc/sys", k).exists()}}


def _same_threads(before: dict, now: dict) -> dict:
    """The threads alive both times whose CPUs differ (a kworker's name changes with its work)."""
    return {pid: (before[pid], now[pid]) for pid in set(before) & set(now) if before[pid][2] != now[pid][2]}


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if len(os.sched_getaffinity(0)) < 2 or not os.access(WRITEBACK, os.W_OK):
        return "needs two CPUs and a writable writeback cpumask"
    return None


@pytest.mark.live
@pytest.mark.skipif(_cannot_run() is not None, reason=_cannot_run() or "")
def test_live_writeback_kthreads_and_sysctls_apply_and_roll_back_every_affinity_exactly(run_cli, tmp_path):
    threads, state, host_before = _kthreads(), _state(), live_state()
    profile = tmp_path / "pinned-runtime.yaml"
    profile.write_text(PROFILE)
    try:
        code, out, err = run_cli("apply", str(profile), "--no-persist", "--json")
        assert code == 0, err
        result = json.loads(out)
        moved = {c["target"] for c in result["changes"] if c["target"].startswith("kthread ")
                 and c["status"] == "changed"}
        assert moved, result["changes"]
        now = _kthreads()
        for pid, (name, flags, cpus) in threads.items():
            if pid not in now or now[pid][0] != name:
                continue
            if not flags & 0x04000000 and len(cpus) > 1 and 1 in cpus:  # movable, reaching isolated CPU 1
                assert now[pid][2] == frozenset(cpus - {1}), (name, now[pid])
            elif flags & 0x04000000:  # per-CPU: kvmtune never names it (a workqueue's rescuer,
                # kworker/R-writeback, follows the writeback mask: the kernel moves it, not kvmtune)
                assert not [t for t in moved if t.endswith(f"({pid}) affinity")], (name, pid)
        assert WRITEBACK.read_text().strip() == "1"
        assert Path("/proc/sys/kernel/timer_migration").read_text().strip() == "0"
        assert any("boot" in w and "--no-persist" in w for w in result["warnings"]), result["warnings"]
        code, out, err = run_cli("rollback", "--json")
        assert code == 0, err
        left = (_same_threads(threads, _kthreads()), _state())  # what rollback left, before any last resort
    finally:
        if _state() != state or _same_threads(threads, _kthreads()):
            run_cli("rollback")
        for pid, (was, _) in _same_threads(threads, _kthreads()).items():  # last resort
            try:
                os.sched_setaffinity(pid, was[2])
            except OSError:
                pass
        WRITEBACK.write_text(state["writeback"]) if _state()["writeback"] != state["writeback"] else None
    assert left == ({}, state)
    assert _same_threads(threads, _kthreads()) == {} and _state() == state
    assert live_state() == host_before
