"""cpu.isolation, cpu.power and kernel.cmdline on a captured 2-socket SMT host with isolation added."""


from tests.conftest import build_root
from tests.fixtures.synthetic import write_tree

HOST = "intel-silver4108-32c-2n"  # node 0: 0-7,16-23; node 1: 8-15,24-31; siblings n, n+16
ISO = "1-7,9-15,17-23,25-31"  # what 'kvmtune partition' computes for it
HK = "0,8,16,24"


def _isolated_host(tmp_path, cmdline_extra: str, files: dict | None = None):
    root = build_root(HOST, tmp_path)
    base = {
        "proc/cmdline": f"BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro {cmdline_extra}\n",
        "sys/devices/system/cpu/isolated": ISO + "\n",
        "sys/devices/system/cpu/nohz_full": ISO + "\n",
        "proc/irq/default_smp_affinity": "01010101\n",  # CPUs 0, 8, 16, 24
        "sys/devices/virtual/workqueue/cpumask": "01010101\n",
        "proc/irq/24/effective_affinity_list": "0\n",
        "proc/irq/25/effective_affinity_list": "8\n",
        "proc/interrupts": "           CPU0       CPU1\n  24:   100   0  IR-PCI-MSI 524288-edge  eth0-tx-0\n"
                           "  25:   5   0  IR-PCI-MSI 524289-edge  eth0-rx-0\n",
        "etc/default/irqbalance": f'IRQBALANCE_BANNED_CPULIST="{ISO}"\n',
    }
    base.update(files or {})
    write_tree(str(root), base)
    return root


GOOD_ARGS = f"isolcpus=managed_irq,domain,{ISO} nohz=on nohz_full={ISO} rcu_nocbs={ISO} irqaffinity={HK} nosoftlockup skew_tick=1"


def _checks(check_json, root, only="cpu.isolation,cpu.power,kernel.cmdline"):
    _, report = check_json(root, "--only", only)
    return {c["id"]: c for c in report["checks"]}, report


def test_a_consistent_split_passes_and_is_in_the_json(tmp_path, check_json):
    root = _isolated_host(tmp_path, GOOD_ARGS)
    checks, report = _checks(check_json, root)
    iso = checks["cpu.isolation"]
    assert iso["status"] == "pass", iso["detail"]
    assert iso["detail"].startswith(f"isolated {ISO} (isolcpus, nohz_full, rcu_nocbs, irqaffinity)")
    _, full = check_json(root)
    assert full["host"]["cpu"]["isolation"]["isolated"] == ISO
    assert full["host"]["cpu"]["isolation"]["irqbalance_banned"] == {"file": "/etc/default/irqbalance", "cpus": ISO}
    assert "power" in full["host"]["cpu"]


def test_every_gap_in_the_isolation_is_named(tmp_path, check_json):
    # rcu_nocbs missing, CPU 1 isolated without its sibling 17, node 1 fully isolated,
    # an IRQ on an isolated CPU, default affinity and workqueues everywhere, irqbalance not banning
    iso = "1-15,24-31"
    root = _isolated_host(tmp_path, f"isolcpus=domain,{iso} nohz_full={iso}", {
        "sys/devices/system/cpu/isolated": iso + "\n", "sys/devices/system/cpu/nohz_full": iso + "\n",
        "proc/irq/25/effective_affinity_list": "9\n",
        "proc/irq/default_smp_affinity": "ffffffff\n", "sys/devices/virtual/workqueue/cpumask": "ffffffff\n",
        "etc/default/irqbalance": "#IRQBALANCE_BANNED_CPULIST=\n",
        "etc/systemd/system.conf.d/50-affinity.conf": "[Manager]\nCPUAffinity=0-31\n",
    })
    checks, _ = _checks(check_json, root)
    detail = checks["cpu.isolation"]["detail"]
    assert checks["cpu.isolation"]["status"] == "warn"
    for words in ("nohz_full CPUs 1-15,24-31 still run RCU callbacks",
                  "IRQs 25 (IR-PCI-MSI 524289-edge eth0-rx-0) may be handled on isolated CPUs",
                  "/proc/irq/default_smp_affinity is 0-31", "the workqueue cpumask is 0-31",
                  "irqbalance may move IRQs onto isolated CPUs 1-15,24-31",
                  "CPUAffinity= in /etc/systemd/system.conf.d/50-affinity.conf is 0-31",
                  "SMT cores split between host and guests: 1 isolated, 17 not",
                  "node 1 has no housekeeping CPU"):
        assert words in detail, words


def test_no_isolation_is_information_not_a_warning(tmp_path, check_json):
    root = build_root(HOST, tmp_path)
    checks, _ = _checks(check_json, root)
    assert checks["cpu.isolation"]["status"] == "info"
    assert "no CPUs isolated" in checks["cpu.isolation"]["detail"]
    assert checks["cpu.power"]["status"] == "info"
    assert checks["kernel.cmdline"]["status"] == "info"


def _power_files(governor: str, latency_limit: str) -> dict:
    files = {}
    for policy in range(2):
        base = f"sys/devices/system/cpu/cpufreq/policy{policy}"
        files.update({f"{base}/affected_cpus": f"{policy}\n", f"{base}/scaling_driver": "intel_pstate\n",
                      f"{base}/scaling_governor": f"{governor}\n",
                      f"{base}/energy_performance_preference": "balance_performance\n",
                      f"{base}/scaling_available_governors": "performance powersave\n"})
    files["sys/devices/system/cpu/intel_pstate/no_turbo"] = "0\n"
    files["sys/devices/system/cpu/cpuidle/current_driver"] = "intel_idle\n"
    for i, (name, latency) in enumerate((("POLL", 0), ("C1", 2), ("C6", 170))):
        base = f"sys/devices/system/cpu/cpu0/cpuidle/state{i}"
        files.update({f"{base}/name": f"{name}\n", f"{base}/latency": f"{latency}\n", f"{base}/disable": "0\n"})
    for cpu in range(32):
        files[f"sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us"] = f"{latency_limit}\n"
    return files


def test_power_policy_that_wakes_pinned_guests_slowly_is_a_warning(tmp_path, check_json):
    root = _isolated_host(tmp_path, GOOD_ARGS, _power_files("powersave", "0"))
    checks, report = _checks(check_json, root)
    power = checks["cpu.power"]
    assert power["status"] == "warn"
    assert "governor powersave on 2 policies (intel_pstate); EPP balance_performance; boost on" in power["detail"]
    assert "governor powersave on a host with isolated CPUs" in power["detail"]
    assert "idle states C6 take over 20 us to leave" in power["detail"]
    fixed = _isolated_host(tmp_path / "b", GOOD_ARGS, _power_files("performance", "20"))
    checks, _ = _checks(check_json, fixed)
    assert checks["cpu.power"]["status"] == "info", checks["cpu.power"]["detail"]


def test_kvmtunes_boot_arguments_pending_a_reboot_or_contradicted(tmp_path, check_json):
    dropin = 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX hugepagesz=1G hugepages=16 nohz_full=2-7"\n'
    root = _isolated_host(tmp_path, "hugepagesz=1G hugepages=16", {
        "etc/default/grub.d/90-kvmtune.cfg": dropin,
        "etc/default/grub": 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet nohz_full=4-7"\n'})
    checks, _ = _checks(check_json, root)
    c = checks["kernel.cmdline"]
    assert c["status"] == "warn"
    assert "reboot pending: the running kernel lacks nohz_full=2-7" in c["detail"]
    assert "contradicted by nohz_full=4-7 in /etc/default/grub" in c["detail"]
    done = _isolated_host(tmp_path / "b", "hugepagesz=1G hugepages=16 nohz_full=2-7",
                          {"etc/default/grub.d/90-kvmtune.cfg": dropin})
    checks, _ = _checks(check_json, done)
    assert checks["kernel.cmdline"]["status"] == "pass"
    assert checks["kernel.cmdline"]["detail"] == "the running kernel has kvmtune's hugepagesz=1G hugepages=16 nohz_full=2-7"


def test_the_state_file_the_journal_view_reads_is_kvmtunes():
    from kvmtune.host import owned
    from kvmtune.tune import journal

    assert journal.STATE_FILE == owned.STATE_FILE
