"""``check --for pinned``: a captured 2-socket host where isolation is in effect is ready, each
requirement taken away in turn makes cpu.isolation fail naming it, a plain check is not
changed by them, and this machine (no nohz_full in its kernel) is not ready."""

import pytest

from tests.conftest import by_id
from tests.fixtures.synthetic import write_tree
from tests.test_isolation import GOOD_ARGS, HK, ISO, _isolated_host, _power_files
from tests.test_pinned_tuning import PF_KTHREAD, PF_NO_SETAFFINITY, task_files

ISOLATED = [c for c in range(32) if c % 8]
GIB_POOL = "sys/devices/system/node/node{}/hugepages/hugepages-1048576kB/{}"


def ready_files() -> dict:
    """What pinned needs in effect, beyond the consistent split test_isolation builds."""
    files = _power_files("performance", "0")
    for cpu in ISOLATED:  # C6 (170 us) exists, but PM QoS keeps the isolated CPUs out of it
        files[f"sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us"] = "20\n"
    # rcu_nocbs= in effect: one rcuop kthread per isolated CPU, itself on housekeeping CPUs
    files.update(task_files({100 + c: (f"rcuop/{c}", PF_KTHREAD, HK) for c in ISOLATED}))
    files.update(task_files({12: ("ksoftirqd/1", PF_KTHREAD | PF_NO_SETAFFINITY, "1")}))  # per-CPU: fine
    files.update({"sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages": "8\n",
                  "sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages": "8\n",
                  "sys/kernel/mm/ksm/run": "0\n",
                  "sys/devices/virtual/workqueue/writeback/cpumask": "01010101\n"})
    for node in (0, 1):
        for name, value in (("nr_hugepages", "4"), ("free_hugepages", "4"), ("surplus_hugepages", "0")):
            files[GIB_POOL.format(node, name)] = value + "\n"
    return files


def pinned_check(check_json, root, *extra):
    code, report = check_json(root, "--for", "pinned", *extra)
    return code, report, by_id(report)


def test_a_host_with_isolation_in_effect_is_ready_for_pinned(tmp_path, check_json):
    root = _isolated_host(tmp_path, GOOD_ARGS, ready_files())
    code, report, checks = pinned_check(check_json, root)
    iso = checks["cpu.isolation"]
    assert iso["status"] == "pass", iso["detail"]
    assert iso["data"]["pinned_gaps"] == []
    # (this capture has no /dev/kvm, so the verdict is not ready for anything; cpu.isolation blocks nothing)
    assert "cpu.isolation" not in checks["ready"]["data"].get("blocking", []), checks["ready"]["detail"]


# Each requirement taken away: (files changed, words of the gap cpu.isolation names).
GAPS = {
    "tick": ({"sys/devices/system/cpu/nohz_full": "\n"},
             "the tick still runs on CPUs 1-7,9-15,17-23,25-31 (/sys/devices/system/cpu/nohz_full is '': "
             "nohz_full= is on the command line but not in effect"),
    "rcu": (task_files({103: ("kthreadd", PF_KTHREAD, HK)}),  # CPU 3's rcuop is gone
            "RCU callbacks still run on CPUs 3 (rcu_nocbs= is on the command line but no rcuop kthread takes them)"),
    "irq": ({"proc/irq/25/smp_affinity_list": "9\n", "proc/irq/25/effective_affinity_list": "9\n"},
            "IRQs on isolated CPUs: 25 (IR-PCI-MSI 524289-edge eth0-rx-0)"),
    "hugepages": ({GIB_POOL.format(1, "nr_hugepages"): "0\n", GIB_POOL.format(1, "free_hugepages"): "0\n",
                   **{GIB_POOL.format(1, n).replace("1048576kB", "2048kB"): "0\n"
                      for n in ("nr_hugepages", "free_hugepages")}},
                  "no huge pages reserved on node 1, where isolated CPUs are"),
    "ksm": ({"sys/kernel/mm/ksm/run": "1\n"}, "KSM is running (/sys/kernel/mm/ksm/run is 1)"),
    "idle": ({"sys/devices/system/cpu/cpu5/power/pm_qos_resume_latency_us": "0\n"},
             "idle states slower than pinned's 20 us to leave: C6 (170 us)"),
}


@pytest.mark.parametrize("gap", sorted(GAPS))
def test_each_requirement_missing_fails_cpu_isolation_under_pinned_naming_it(tmp_path, check_json, gap):
    files, words = GAPS[gap]
    root = _isolated_host(tmp_path, GOOD_ARGS, {**ready_files(), **files})
    code, report, checks = pinned_check(check_json, root)
    iso = checks["cpu.isolation"]
    assert iso["status"] == "fail" and words in iso["detail"], iso["detail"]
    assert iso["detail"].endswith("(blocks pinned)")
    assert "cpu.isolation" in checks["ready"]["data"]["blocking"]
    # A plain check judges the split as before: what pinned requires does not fail it.
    _, plain = check_json(root)
    assert by_id(plain)["cpu.isolation"]["status"] != "fail"
    assert words not in by_id(plain)["cpu.isolation"]["detail"]


def test_the_new_settings_are_judged_naming_each_gap(tmp_path, check_json):
    files = {**ready_files(), "sys/devices/virtual/workqueue/writeback/cpumask": "ffffffff\n",
             "proc/sys/kernel/timer_migration": "1\n", "proc/sys/kernel/nmi_watchdog": "1\n",
             "proc/sys/vm/stat_interval": "1\n", "proc/sys/kernel/sched_rt_runtime_us": "-1\n",
             **task_files({2: ("kthreadd", PF_KTHREAD, "0-31")})}
    root = _isolated_host(tmp_path, GOOD_ARGS.replace(" nosoftlockup", ""), files)
    _, _, checks = pinned_check(check_json, root, "--only", "cpu.isolation,kvm")
    iso = checks["cpu.isolation"]
    assert iso["status"] == "warn"  # tuning gaps: named, and pinned's requirements still hold
    for words in ("the writeback workqueue's cpumask is 0-31", "1 movable kernel threads may run on isolated CPUs: "
                  "kthreadd (2)", "kernel.timer_migration=1", "kernel.nmi_watchdog=1, no nmi_watchdog=0",
                  "vm.stat_interval=1", "nosoftlockup not on the command line",
                  "RT throttling off (kernel.sched_rt_runtime_us=-1)"):
        assert words in iso["detail"], (words, iso["detail"])


def test_the_unknown_intent_message_names_pinned(run_cli):
    code, _, err = run_cli("check", "--for", "pined")
    assert code == 2 and "did you mean 'pinned'?" in err


def test_kvm_modules_reports_the_options_pinned_guests_care_about(tmp_path, check_json):
    root = _isolated_host(tmp_path, GOOD_ARGS + " split_lock_detect=off", {
        "sys/module/kvm/parameters/nx_huge_pages": "Y\n", "sys/module/kvm/parameters/halt_poll_ns": "0\n",
        "sys/module/kvm/parameters/lapic_timer_advance": "Y\n",
        "sys/module/kvm_intel/parameters/ept": "Y\n"})
    cpuinfo = root / "proc/cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace("flags\t\t: ", "flags\t\t: split_lock_detect "))
    _, report = check_json(root, "--only", "kvm.modules")
    mods = by_id(report)["kvm.modules"]
    assert ("for pinned guests: nx_huge_pages=Y, halt polling off, LAPIC timer advance adaptive, "
            "split-lock detection off") in mods["detail"], mods["detail"]
    meaning = mods["data"]["pinned"]
    assert "~100 us spikes" in meaning["nx_huge_pages"] and "halt_poll_ns=400000" in meaning["halt_poll_ns"]
    assert "tscdeadline_latency" in meaning["lapic_timer_advance"]


def test_this_machine_is_not_ready_for_pinned_and_says_why(check_json):
    """Read-only on the live host: its kernel has no NO_HZ_FULL, so no CPU can be isolated in effect."""
    import os

    if not os.path.exists("/sys/devices/system/cpu/online"):
        pytest.skip("no live /sys here")
    code, report = check_json("/", "--for", "pinned", "--only", "cpu.isolation,kvm.device,kvm.functional")
    iso = by_id(report)["cpu.isolation"]
    if os.path.exists("/sys/devices/system/cpu/nohz_full") and open("/sys/devices/system/cpu/nohz_full").read().strip():
        pytest.skip("this machine has nohz_full in effect")
    assert iso["status"] == "fail" and "pinned" not in report["ready_for"]
    assert "pinned requires:" in iso["detail"] and "(blocks pinned)" in iso["detail"], iso["detail"]
