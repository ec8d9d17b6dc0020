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


IRQBALANCE = "# irqbalance is a daemon process that distributes interrupts\n#IRQBALANCE_ONESHOT=\nIRQBALANCE_BANNED_CPULIST=2\n"


def _host(tmp_path) -> Path:
    root = build_root(HOST, tmp_path)
    files = {"proc/irq/default_smp_affinity": "ffffffff\n", "sys/devices/virtual/workqueue/cpumask": "ffffffff\n",
             "sys/module/kvm/parameters/kvmclock_periodic_sync": "Y\n",
             "sys/module/kvm_intel/parameters/ple_gap": "128\n",
             "sys/devices/system/cpu/intel_pstate/no_turbo": "1\n",
             "etc/default/grub": 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\n', "usr/sbin/update-grub": "",
             "usr/sbin/irqbalance": "", "etc/default/irqbalance": IRQBALANCE}
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
    assert read("etc/modprobe.d/kvmtune.conf").splitlines()[1:-1] == ["options kvm kvmclock_periodic_sync=0",
                                                                    "options kvm_intel ple_gap=0"]
    assert read("etc/systemd/system.conf.d/90-kvmtune.conf").splitlines()[1:-1] == ["[Manager]", f"CPUAffinity={HK}"]
    assert "w /sys/devices/virtual/workqueue/cpumask - - - - 1010101" in read("etc/tmpfiles.d/kvmtune.conf")
    assert read("etc/default/irqbalance") == IRQBALANCE + (
        "# kvmtune: keep IRQs off the isolated CPUs ('kvmtune rollback' removes these two lines)\n"
        f"IRQBALANCE_BANNED_CPULIST={ISO}\n")
    assert {"target": "/etc/default/irqbalance", "status": "pending-restart"}.items() <= next(
        c for c in result["changes"] if c["target"] == "/etc/default/irqbalance").items()
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
    from kvmtune.tune.registry import check_record

    with pytest.raises(ValueError, match="is not an IRQ number"):
        check_record("irq:x", {"type": "irq", "irq": "../../etc/passwd", "original": "0"})
    with pytest.raises(ValueError, match="is not one kvmtune sets"):
        check_record("power:x:0", {"type": "power", "knob": "x", "index": 0, "original": "0"})
    with pytest.raises(ValueError, match="is not one kvmtune sets"):
        check_record("cpumask:x", {"type": "cpumask", "knob": "../../etc", "original": "1"})


def test_the_owned_allow_list_takes_the_new_knobs_and_files_and_nothing_near_them():
    from kvmtune.host import owned

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


OWN_FILES = ("/etc/systemd/system.conf.d/90-kvmtune.conf", "/etc/default/grub.d/90-kvmtune.cfg",
             "/etc/tmpfiles.d/kvmtune.conf", "/var/lib/kvmtune/state.json")


def _force_back(before: dict, existed: dict) -> None:
    """Last resort if rollback itself failed: each saved value written back, files the test made removed."""
    now = _live_cpus_state()
    for path, value in before.items():
        if isinstance(value, str) and now.get(path) != value:
            try:
                Path(path).write_text(value)
            except OSError:
                pass
    for path in OWN_FILES:
        if not existed[path] and os.path.exists(path):
            os.unlink(path)


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
    existed = {path: os.path.exists(path) for path in OWN_FILES}
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
        _force_back(before, existed)
    assert _live_cpus_state() == before
    assert live_state() == host_before


# -- Boot Loader Specification hosts (Fedora, RHEL 9.3+) ---------------------------------

BLS_ENTRY = ("title Fedora Linux (6.8.5-301.fc40.x86_64) 40\nversion 6.8.5-301.fc40.x86_64\n"
             "linux /vmlinuz-6.8.5-301.fc40.x86_64\ninitrd /initramfs-6.8.5-301.fc40.x86_64.img\n"
             "options root=UUID=1234 ro rhgb quiet nohz_full=4-7 hugepagesz=2M hugepages=64\n"
             "grub_users $grub_users\ngrub_arg --unrestricted\ngrub_class fedora\n")


def _bls_host(tmp_path) -> Path:
    root = _host(tmp_path)
    entries = root / "boot" / "loader" / "entries"
    entries.mkdir(parents=True)
    for name in ("abc-6.8.5-301.fc40.x86_64.conf", "abc-0-rescue.conf"):
        (entries / name).write_text(BLS_ENTRY)
        (entries / name).chmod(0o600)
    return root


def test_on_a_bls_host_the_entries_options_carry_the_arguments_and_roll_back_exactly(run_cli, tmp_path, check_json):
    root = _bls_host(tmp_path)
    before = tree_state(str(root))
    profile = "cpus: {housekeeping: {per_node: 1}}\nhugepages: {1G: {count: 4, boot: true}}\n"
    code, out, err = _run(run_cli, root, "apply", profile=profile, tmp_path=tmp_path)
    assert code == 0, err
    for name in ("abc-6.8.5-301.fc40.x86_64.conf", "abc-0-rescue.conf"):
        path = root / "boot/loader/entries" / name
        options = next(l for l in path.read_text().splitlines() if l.startswith("options "))
        # nohz_full replaced (as grubby --args does), the 2M pool kept beside the new 1G one
        assert options == (f"options root=UUID=1234 ro rhgb quiet hugepagesz=2M hugepages=64 hugepagesz=1G "
                           f"hugepages=4 isolcpus=managed_irq,domain,{ISO} nohz=on nohz_full={ISO} "
                           f"rcu_nocbs={ISO} irqaffinity={HK}")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert path.read_text().replace(options, "") == BLS_ENTRY.replace(
            "options root=UUID=1234 ro rhgb quiet nohz_full=4-7 hugepagesz=2M hugepages=64", "")
    assert not (root / "etc/default/grub.d/90-kvmtune.cfg").exists()  # a BLS host gets no GRUB drop-in
    _, report = check_json(root, "--only", "kernel.cmdline")
    line = report["checks"][0]
    assert line["status"] == "warn" and "lacks hugepagesz=1G hugepages=4 isolcpus=" in line["detail"]
    assert line["hint"] == "Reboot: the boot entries already carry them."
    code, out, err = _run(run_cli, root, "verify", profile=profile, tmp_path=tmp_path)
    assert code == 0, out + err
    code, _, err = _run(run_cli, root, "rollback")
    assert code == 0, err
    assert tree_state(str(root)) == before


def test_a_bls_entry_record_that_names_another_file_is_refused():
    from kvmtune.host import owned
    from kvmtune.tune.registry import check_record

    with pytest.raises(ValueError, match="is not a boot loader entry"):
        check_record("bls:../../etc/passwd", {"type": "bls", "entry": "../../etc/passwd", "original": "x"})
    assert owned.allows("shared", "boot/loader/entries/abc-6.8.conf")
    for rel in ("boot/loader/entries/../grub.cfg", "boot/loader/loader.conf", "boot/loader/entries/x.conf/y",
                "boot/vmlinuz"):
        assert not owned.allows("shared", rel), rel


def test_rollback_of_an_entry_edited_since_puts_back_only_its_options():
    from kvmtune.tune.bls import restored, with_args

    original = "title A\nlinux /vmlinuz-1\noptions root=/dev/sda1 ro\n"
    ours = with_args(original, ["nohz_full=2-3"])
    assert ours == "title A\nlinux /vmlinuz-1\noptions root=/dev/sda1 ro nohz_full=2-3\n"
    assert restored(original, ours) == original
    edited = ours.replace("title A", "title B")  # a kernel update retitled it since
    assert restored(original, edited) == "title B\nlinux /vmlinuz-1\noptions root=/dev/sda1 ro\n"


@pytest.mark.parametrize("code, status", [(5, "pending-reboot"), (22, "pending-reboot"), (1, "pending-reboot"),
                                          (13, "failed"), (30, "failed")])
def test_only_the_kernels_refusal_to_move_an_irq_is_pending_a_reboot(code, status):
    """EIO/EINVAL/EPERM: the kernel keeps the IRQ where it is (isolcpus=managed_irq moves it at boot).
    EACCES (not root) or EROFS (read-only /proc) fails the run like any knob."""
    from kvmtune.errors import HostError
    from kvmtune.tune.cpus import IrqChange

    class Host:
        def read_exact_optional(self, rel):
            return "0-31\n"

        def write(self, rel, value):
            raise HostError(rel, "refused", code)

    change = IrqChange(24, "0-31", HK)
    change.execute(Host(), None)
    assert change.status == status, change.detail
