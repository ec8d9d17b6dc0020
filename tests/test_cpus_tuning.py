"""Profile sections cpus, power and kvm_modules: validated, planned from the topology, applied,
verified and rolled back exactly (a captured 2-socket SMT host, and this machine's kernel)."""

import json
import os
from pathlib import Path

import pytest

from tests.conftest import build_root, live_state
from tests.fixtures.synthetic import write_tree
from tests.support.treestate import tree_state

HOST = "intel-silver4108-32c-2n"  # node 0: 0-7,16-23; node 1: 8-15,24-31; siblings n, n+16
ISO = "1-7,9-15,17-23,25-31"
HK = "0,8,16,24"

PROFILE = """
cpus:
  housekeeping: {per_node: 1}
power:
  governor: performance
  energy_performance_preference: performance
  boost: true
  max_wakeup_latency_us: 20
kvm_modules:
  kvm: {kvmclock_periodic_sync: 0}
  kvm_intel: {ple_gap: 0}
  kvm_amd: {avic: 1}
"""


def _host(tmp_path) -> Path:
    root = build_root(HOST, tmp_path)
    files = {"proc/irq/default_smp_affinity": "ffffffff\n", "sys/devices/virtual/workqueue/cpumask": "ffffffff\n",
             "sys/module/kvm/parameters/kvmclock_periodic_sync": "Y\n",
             "sys/module/kvm_intel/parameters/ple_gap": "128\n",
             "sys/devices/system/cpu/intel_pstate/no_turbo": "1\n",
             "etc/default/grub": 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'}
    for irq, cpus in ((0, "0"), (24, "0-31"), (25, "0-31"), (30, "0")):
        files[f"proc/irq/{irq}/smp_affinity_list"] = cpus + "\n"
        files[f"proc/irq/{irq}/effective_affinity_list"] = cpus.split("-")[0] + "\n"
    for policy in range(32):
        base = f"sys/devices/system/cpu/cpufreq/policy{policy}"
        files.update({f"{base}/affected_cpus": f"{policy}\n", f"{base}/scaling_driver": "intel_pstate\n",
                      f"{base}/scaling_governor": "powersave\n",
                      f"{base}/energy_performance_preference": "balance_performance\n",
                      f"{base}/scaling_available_governors": "performance powersave\n"})
        files[f"sys/devices/system/cpu/cpu{policy}/power/pm_qos_resume_latency_us"] = "0\n"
    write_tree(str(root), files)
    return root


def _run(run_cli, root, *argv, profile=None, tmp_path=None):
    args = ["--root", str(root), *argv]
    if profile is not None:
        path = tmp_path / "profile.yaml"
        path.write_text(profile)
        args.append(str(path))
    return run_cli(*args)


def test_apply_verify_rollback_on_a_captured_host_restores_the_tree_exactly(run_cli, tmp_path):
    root = _host(tmp_path)
    before = tree_state(str(root))
    code, out, err = _run(run_cli, root, "apply", "--json", profile=PROFILE, tmp_path=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert "kvm_modules.kvm_amd: this host does not use kvm_amd: its options are left out" in result["warnings"]
    read = lambda rel: (root / rel).read_text()  # noqa: E731
    assert read("proc/irq/default_smp_affinity").strip() == "1010101"
    assert read("sys/devices/virtual/workqueue/cpumask").strip() == "1010101"
    assert read("proc/irq/24/smp_affinity_list").strip() == HK
    assert read("proc/irq/30/smp_affinity_list").strip() == "0"  # already on housekeeping: untouched
    assert read("sys/devices/system/cpu/cpufreq/policy5/scaling_governor").strip() == "performance"
    assert read("sys/devices/system/cpu/intel_pstate/no_turbo").strip() == "0"
    assert read("sys/devices/system/cpu/cpu9/power/pm_qos_resume_latency_us").strip() == "20"
    grub = read("etc/default/grub.d/90-kvmtune.cfg")
    assert f"isolcpus=managed_irq,domain,{ISO} nohz=on nohz_full={ISO} rcu_nocbs={ISO} irqaffinity={HK}" in grub
    assert read("etc/modprobe.d/kvmtune.conf").splitlines()[1:] == ["options kvm kvmclock_periodic_sync=0",
                                                                    "options kvm_intel ple_gap=0"]
    assert read("etc/systemd/system.conf.d/90-kvmtune.conf").splitlines()[1:] == ["[Manager]", f"CPUAffinity={HK}"]
    assert "w /sys/devices/virtual/workqueue/cpumask - - - - 1010101" in read("etc/tmpfiles.d/kvmtune.conf")
    code, out, err = _run(run_cli, root, "verify", profile=PROFILE, tmp_path=tmp_path)
    assert code == 0, out + err
    code, _, err = _run(run_cli, root, "rollback")
    assert code == 0, err
    assert tree_state(str(root)) == before


@pytest.mark.parametrize("profile, words", [
    ("cpus: {isolated: \"1-7,9-15,17-23,25-40\"}", "cpus.isolated: CPUs 32-40 are not online"),
    ("cpus: {isolated: 0-31}", "cpus.isolated: node 0 would have no housekeeping CPU"),
    ("cpus: {isolated: 1-7}", "cpus.isolated: this splits SMT cores between host and guests (1 without 17"),
    ("cpus: {housekeeping: {per_node: 8}}", "node 0 has 8 core(s): keeping 8 for the host leaves none"),
    ("kvm_modules: {kvm: {no_such_param: 1}}", "kvm_modules.kvm.no_such_param: kvm has no parameter 'no_such_param'"),
    ("kvm_modules: {kvm_foo: {a: 1}}", "kvm_modules.kvm_foo: unknown key 'kvm_foo'"),
    ("power: {governor: ondemand}", "power.governor: policy0 offers performance, powersave, not 'ondemand'"),
    ("power: {max_wakeup_latency_us: -1}", "power.max_wakeup_latency_us: -1 is out of range"),
])
def test_bad_cpus_power_and_module_settings_exit_2_naming_the_key(run_cli, tmp_path, profile, words):
    root = _host(tmp_path)
    before = tree_state(str(root))
    code, out, err = _run(run_cli, root, "apply", profile=profile + "\n", tmp_path=tmp_path)
    assert code == 2, out + err
    assert words in err
    assert "profile.yaml:1:" in err
    assert tree_state(str(root)) == before


def test_a_tampered_journal_record_for_the_new_kinds_is_refused():
    from kvmtune.tune.kinds import check_record

    with pytest.raises(ValueError, match="is not an IRQ number"):
        check_record("irq:x", {"type": "irq", "irq": "../../etc/passwd", "original": "0"})
    with pytest.raises(ValueError, match="is not one kvmtune sets"):
        check_record("power:x:0", {"type": "power", "knob": "x", "index": 0, "original": "0"})
    with pytest.raises(ValueError, match="is not one kvmtune sets"):
        check_record("cpumask:x", {"type": "cpumask", "knob": "../../etc", "original": "1"})


def test_the_owned_allow_list_takes_the_new_knobs_and_files_and_nothing_near_them():
    from kvmtune import owned

    assert owned.allows("knob", "proc/irq/24/smp_affinity_list")
    assert owned.allows("knob", "sys/devices/system/cpu/cpufreq/policy3/scaling_governor")
    assert owned.allows("file", "etc/modprobe.d/kvmtune.conf")
    for rel in ("proc/irq/24/../../sys/x", "proc/irq/24/node", "etc/modprobe.d/blacklist.conf",
                "sys/devices/system/cpu/cpu0/online", "etc/systemd/system.conf"):
        assert not owned.allows("knob", rel) and not owned.allows("file", rel), rel


# -- live: the runtime parts that exist on this machine ------------------------------------

def _live_cpus_state() -> dict:
    out = {}
    for path in sorted(Path("/proc/irq").glob("*/smp_affinity_list")) + [
            Path("/proc/irq/default_smp_affinity"), Path("/sys/devices/virtual/workqueue/cpumask")] + \
            sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/power/pm_qos_resume_latency_us")):
        try:
            out[str(path)] = path.read_text()
        except OSError:
            pass
    for path in ("/etc/modprobe.d", "/etc/systemd/system.conf.d", "/etc/default/grub.d", "/var/lib/kvmtune"):
        out[path] = sorted(os.listdir(path)) if os.path.isdir(path) else None
    return out


def _can_run_live() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if len(os.sched_getaffinity(0)) < 2 or not os.access("/proc/irq/default_smp_affinity", os.W_OK):
        return "needs two CPUs and a writable /proc/irq"
    return None


@pytest.mark.live
@pytest.mark.skipif(_can_run_live() is not None, reason=_can_run_live() or "")
def test_live_irqs_workqueues_and_latency_limits_apply_and_roll_back_exactly(run_cli, tmp_path):
    before, host_before = _live_cpus_state(), live_state()
    profile = tmp_path / "cpus.yaml"
    profile.write_text("cpus: {housekeeping: {per_node: 1}}\npower: {governor: performance, "
                       "max_wakeup_latency_us: 20}\n")
    try:
        code, out, err = run_cli("apply", str(profile), "--json")
        assert code == 0, err
        result = json.loads(out)
        moved = [c for c in result["changes"] if c["target"].startswith("irq ") and c["status"] == "changed"]
        assert moved, result["changes"]
        assert Path("/sys/devices/virtual/workqueue/cpumask").read_text().strip() != before[
            "/sys/devices/virtual/workqueue/cpumask"].strip()
        if not Path("/sys/devices/system/cpu/cpufreq").is_dir():
            assert any("no cpufreq on this host" in w for w in result["warnings"])
        code, out, err = run_cli("rollback")
        assert code == 0, err
    finally:
        if _live_cpus_state() != before:
            run_cli("rollback")
    assert _live_cpus_state() == before
    assert live_state() == host_before
