"""The pinned profile's quieting settings: the boot section, the writeback cpumask, movable
kernel threads and tuned's sysctls, planned, applied, verified and rolled back exactly on a
captured 2-socket host (and live, for what moves at run time, in test_pinned_live.py)."""

import json

import pytest

from tests.conftest import build_root
from tests.fixtures.synthetic import write_tree
from tests.support.treestate import tree_state

HOST = "intel-silver4108-32c-2n"  # node 0: 0-7,16-23; node 1: 8-15,24-31; siblings n, n+16
HK = "0,8,16,24"
PF_KTHREAD, PF_NO_SETAFFINITY = 0x00200000, 0x04000000
# pid -> (name, stat flags, CPUs allowed): movable kthreads, per-CPU ones, one bound to one CPU, a user task
TASKS = {
    2: ("kthreadd", PF_KTHREAD | 0x8040, "0-31"),
    15: ("rcu_preempt", PF_KTHREAD | 0x8040, "0-31"),
    41: ("khugepaged", PF_KTHREAD | 0x8040, "0-7,16-23"),  # one node: it keeps that node's housekeeping
    12: ("ksoftirqd/0", PF_KTHREAD | PF_NO_SETAFFINITY | 0x8040, "0"),
    20: ("migration/5", PF_KTHREAD | PF_NO_SETAFFINITY | 0x8040, "5"),
    30: ("kworker/u64:0", PF_KTHREAD | PF_NO_SETAFFINITY | 0x8040, "0-31"),
    50: ("irq/36-virtio0", PF_KTHREAD | 0x8040, "3"),
    500: ("sshd", 0x400100, "0-31"),
}
MOVED = {2: HK, 15: HK, 41: "0,16"}
SYSCTLS = {"kernel/timer_migration": "1", "kernel/nmi_watchdog": "1", "kernel/hung_task_timeout_secs": "120",
           "vm/stat_interval": "1"}

# tuned's real-time sysctls, as the pinned profile sets them (test_pinned_live applies them live)
QUIET_SYSCTLS = """
sysctl:
  kernel.timer_migration: 0
  -kernel.nmi_watchdog: 0
  kernel.hung_task_timeout_secs: 600
  vm.stat_interval: 10
"""
PROFILE = """
cpus:
  housekeeping: {per_node: 1}
  writeback: true
  kthreads: true
""" + QUIET_SYSCTLS + """boot:
  nosoftlockup: true
  nmi_watchdog: 0
  skew_tick: 1
  tsc: reliable
  intel_pstate: disable
  kvm.nx_huge_pages: never
  split_lock_detect: "off"
"""
BOOT_WORDS = "nosoftlockup nmi_watchdog=0 skew_tick=1 tsc=reliable intel_pstate=disable kvm.nx_huge_pages=never " \
             "split_lock_detect=off"


def stat_line(pid: int, name: str, flags: int) -> str:
    return f"{pid} ({name}) S 2 0 0 0 -1 {flags} " + " ".join(["0"] * 44) + "\n"


def status(name: str, cpus: str) -> str:
    from kvmtune.probe.parse import cpulist

    mask = sum(1 << c for c in cpulist(cpus))
    return f"Name:\t{name}\nState:\tS (sleeping)\nCpus_allowed:\t{mask:x}\nCpus_allowed_list:\t{cpus}\n"


def task_files(tasks=TASKS) -> dict:
    files = {}
    for pid, (name, flags, cpus) in tasks.items():
        files[f"proc/{pid}/stat"] = stat_line(pid, name, flags)
        files[f"proc/{pid}/status"] = status(name, cpus)
    return files


def pinned_host(tmp_path, **extra):
    root = build_root(HOST, tmp_path)
    files = {"proc/irq/default_smp_affinity": "ffffffff\n", "sys/devices/virtual/workqueue/cpumask": "ffffffff\n",
             "sys/devices/virtual/workqueue/writeback/cpumask": "ffffffff\n",
             "etc/default/grub": 'GRUB_DEFAULT=0\n', "usr/sbin/update-grub": "",
             **{f"proc/sys/{k}": v + "\n" for k, v in SYSCTLS.items()}, **task_files()}
    files.update(extra)
    write_tree(str(root), files)
    return root


def run(run_cli, root, tmp_path, *argv, profile=PROFILE):
    path = tmp_path / "profile.yaml"
    path.write_text(profile)
    return run_cli("--root", str(root), *argv, str(path))


def allowed(root, pid) -> str:
    for line in (root / f"proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(pid)


def test_apply_moves_writeback_and_movable_kthreads_sets_sysctls_and_boot_words_and_rollback_restores(
        run_cli, tmp_path):
    root = pinned_host(tmp_path)
    before = tree_state(str(root))
    code, out, err = run(run_cli, root, tmp_path, "apply", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (root / "sys/devices/virtual/workqueue/writeback/cpumask").read_text().strip() == "1010101"
    for pid in TASKS:
        assert allowed(root, pid) == MOVED.get(pid, TASKS[pid][2]), pid  # per-CPU, bound and user tasks stay
    assert "Cpus_allowed:\t1010101" in (root / "proc/2/status").read_text()
    for key, value in {"kernel/timer_migration": "0", "kernel/nmi_watchdog": "0",
                       "kernel/hung_task_timeout_secs": "600", "vm/stat_interval": "10"}.items():
        assert (root / "proc/sys" / key).read_text().strip() == value
    grub = (root / "etc/default/grub.d/90-kvmtune.cfg").read_text()
    assert BOOT_WORDS in grub and "nohz_full=" in grub
    boot = next(c for c in result["changes"] if c["target"] == "/etc/default/grub.d/90-kvmtune.cfg")
    assert boot["when"] == "reboot"
    targets = {c["target"]: c["status"] for c in result["changes"]}
    assert targets["kthread kthreadd (2) affinity"] == "changed"
    assert not [t for t in targets if "ksoftirqd" in t or "kworker" in t or "sshd" in t or "irq/36" in t]
    code, out, err = run(run_cli, root, tmp_path, "verify")
    assert code == 0, out + err
    code, out, err = run(run_cli, root, tmp_path, "apply", "--json")
    assert code == 0 and json.loads(out)["changed"] is False, out  # a second apply changes nothing
    code, _, err = run_cli("--root", str(root), "rollback")
    assert code == 0, err
    assert tree_state(str(root)) == before


def test_verify_names_a_kthread_moved_back_and_a_writeback_mask_reset(run_cli, tmp_path):
    root = pinned_host(tmp_path)
    assert run(run_cli, root, tmp_path, "apply")[0] == 0
    (root / "proc/15/status").write_text(status("rcu_preempt", "0-31"))
    (root / "sys/devices/virtual/workqueue/writeback/cpumask").write_text("ffffffff\n")
    code, out, err = run(run_cli, root, tmp_path, "verify")
    assert code != 0
    assert "kthread rcu_preempt (15) affinity" in out and "cpumask writeback" in out, out


def test_a_pid_that_is_another_task_now_is_neither_moved_nor_restored(run_cli, tmp_path):
    from kvmtune.host.writable import WritableHost
    from kvmtune.tune.kthreads import KthreadChange

    root = pinned_host(tmp_path)
    host = WritableHost(str(root))
    change = KthreadChange(15, "rcu_preempt", "0-31", HK)
    (root / "proc/15/stat").write_text(stat_line(15, "sshd", 0x400100))  # the PID was reused by a user task
    change.execute(host, None)
    assert change.status == "ok" and allowed(root, 15) == "0-31"
    # rollback: a journaled thread that is gone is reported, not written
    code, _, _ = run(run_cli, pinned_host(tmp_path / "b"), tmp_path, "apply")
    root_b = tmp_path / "b" / HOST
    (root_b / "proc/2/stat").write_text(stat_line(2, "other", PF_KTHREAD))
    code, out, err = run_cli("--root", str(root_b), "rollback", "--json")
    assert code == 0, err
    assert "kthread kthreadd (2) is gone: its CPUs are not restored" in json.loads(out)["warnings"]
    assert allowed(root_b, 2) == HK and allowed(root_b, 15) == "0-31"


def test_a_kthread_that_exits_between_the_read_and_the_write_is_no_failure(tmp_path, monkeypatch):
    """Kernel threads come and go (kdamond, a NIC's irq thread): ESRCH at the write means there
    is nothing left to move, not a failed run to undo."""
    import errno

    from kvmtune.errors import HostError
    from kvmtune.host.writable import WritableHost
    from kvmtune.tune.kthreads import KthreadChange

    host = WritableHost(str(pinned_host(tmp_path)))

    def gone(pid, cpus):
        raise HostError(f"proc/{pid}", "sched_setaffinity: No such process", errno.ESRCH)
    monkeypatch.setattr(host, "set_affinity", gone)
    change = KthreadChange(15, "rcu_preempt", "0-31", HK)
    change.execute(host, None)
    assert change.status == "ok" and "exited" in change.detail


def test_the_host_layer_moves_only_a_task_status_file_of_a_snapshot(tmp_path):
    from kvmtune.errors import HostError
    from kvmtune.host import owned

    assert owned.allows("affinity", "proc/15/status")
    for rel in ("proc/15/stat", "proc/self/status", "proc/15/task/15/status", "etc/passwd", "proc/0/status"):
        assert not owned.allows("affinity", rel), rel
    assert owned.allows("remove", "proc/15/.status.kvmtune-tmp")
    from kvmtune.host.writable import WritableHost

    with pytest.raises(HostError):
        WritableHost(str(tmp_path)).set_affinity(0, [0])


@pytest.mark.parametrize("cpuinfo_edit, itlb, warning, word", [
    (lambda t: t.replace("constant_tsc ", ""), None,
     "boot.tsc: this CPU does not report an invariant TSC", "tsc=reliable"),
    (lambda t: t.replace("GenuineIntel", "AuthenticAMD"), None,
     "boot.intel_pstate: not an Intel CPU here (AuthenticAMD)", "intel_pstate=disable"),
    (lambda t: t, "KVM: Mitigation: Split huge pages",
     "boot.kvm.nx_huge_pages: this CPU has iTLB multihit", None),
])
def test_boot_words_the_host_does_not_suit_are_left_out_with_a_warning(run_cli, tmp_path, cpuinfo_edit, itlb,
                                                                       warning, word):
    root = pinned_host(tmp_path)
    cpuinfo = root / "proc/cpuinfo"
    cpuinfo.write_text(cpuinfo_edit(cpuinfo.read_text()))
    if itlb:
        write_tree(str(root), {"sys/devices/system/cpu/vulnerabilities/itlb_multihit": itlb + "\n"})
    code, out, err = run(run_cli, root, tmp_path, "plan", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert any(w.startswith(warning) for w in result["warnings"]), result["warnings"]
    grub = next(c for c in result["changes"] if c["target"] == "/etc/default/grub.d/90-kvmtune.cfg")["after"]
    if word:
        assert word not in grub
    else:
        assert "kvm.nx_huge_pages=never" in grub  # a trade-off named, not refused


@pytest.mark.parametrize("profile, words", [
    ("boot: {tsc: stable}", "boot.tsc: expected one of reliable, nowatchdog, noirqtime, unstable, got str 'stable'"),
    ("boot: {nosoftlockup: 1}", "boot.nosoftlockup: expected true or false (a bare argument), got int 1"),
    ("boot: {quiet: true}", "boot.quiet: unknown key 'quiet'"),
    ("boot: {split_lock_detect: 'ratelimit:0'}", "boot.split_lock_detect: expected one of off, warn, fatal"),
    ("cpus: {housekeeping: {per_node: 1}, kthreads: 1}", "cpus.kthreads: expected true or false"),
])
def test_bad_boot_and_placement_settings_exit_2_naming_the_key(run_cli, tmp_path, profile, words):
    code, _, err = run(run_cli, pinned_host(tmp_path), tmp_path, "plan", profile=profile)
    assert code == 2 and words in err, err


def test_split_lock_ratelimit_takes_a_rate():
    from kvmtune.profile import load_profile_text

    assert load_profile_text("boot: {split_lock_detect: 'ratelimit:10'}").boot["split_lock_detect"][0] == "ratelimit:10"


def test_the_shipped_pinned_profile_uses_every_new_setting():
    from kvmtune.profile import load_profile

    pinned = load_profile("pinned")
    assert pinned.cpus.writeback and pinned.cpus.kthreads
    assert set(pinned.boot) == {"nosoftlockup", "nmi_watchdog", "skew_tick", "tsc", "kvm.nx_huge_pages",
                                "split_lock_detect"}
    for name in ("-kernel.timer_migration", "-kernel.nmi_watchdog", "-kernel.hung_task_timeout_secs",
                 "vm.stat_interval"):
        assert name in pinned.sysctl, name
    assert "kernel.sched_rt_runtime_us" not in pinned.sysctl  # its caveat keeps it out (see the profile)
    assert pinned.kvm_modules["kvm"]["halt_poll_ns"][0] == "400000"
    from kvmtune.checks.isolation_quiet import PINNED_WAKEUP_US

    assert pinned.power["max_wakeup_latency_us"][0] == PINNED_WAKEUP_US
