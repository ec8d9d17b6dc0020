"""A kill at any instant of an apply leaves a host that rollback restores exactly.

A profile touching every section is applied in a forked child that is SIGKILLed just
before or just after each of its mutating system calls in turn; after each kill,
rollback must return the snapshot byte for byte (content, mode, owner, links), with no
temp file or directory left, and a fresh apply must then work. A second test kills a
real ``python -m kvmtune`` process at random moments.
"""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.faults import fork_run
from tests.support.treestate import fresh, tree_diff, tree_state

EVERY_SECTION = """
sysctl:
  vm.swappiness: 10
  vm.dirty_background_ratio: 5
  vm.stat_interval: 10
  -kernel.no_such_knob: 1
hugepages:
  2M:
    count: 512
    boot: true
  1G:
    per_node: {0: 2, 1: 1}
    boot: true
hugetlbfs:
  - {path: /dev/hugepages1G, pagesize: 1G, size: 2G, mode: "1770", group: kvm}
  - {path: /mnt/huge/2M, pagesize: 2M}
ksm:
  run: 1
  pages_to_scan: 500
  merge_across_nodes: 0
thp:
  enabled: never
  defrag: defer
"""


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync guards against power loss, not against a killed process: these tests kill
    processes, hundreds of times, so they skip its cost (forked children inherit this)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    files = synthetic_host(n_cpus=4, iommu_groups=0)  # small: it is copied for every kill
    files["etc/fstab"] = "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n"
    files["etc/sysctl.d/README.sysctl"] = "see sysctl.d(5)\n"
    # A GRUB host: the boot pools go into kvmtune's drop-in (its write is killed too)
    files.update({"etc/default/grub": "GRUB_DEFAULT=0\n", "usr/sbin/update-grub": ""})
    root = write_tree(str(tmp_path_factory.mktemp("template") / "host"), files)
    profile = tmp_path_factory.mktemp("profile") / "every.yaml"
    profile.write_text(EVERY_SECTION)
    return root, str(profile)


def restored(run_cli, root, original, where) -> None:
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, (where, out, err)
    now = tree_state(root)
    assert now == original, (where, tree_diff(original, now))


CPU_SECTIONS = """
cpus:
  housekeeping: {per_node: 1}
  writeback: true
  kthreads: true
boot: {nosoftlockup: true, skew_tick: 1, kvm.nx_huge_pages: never}
power: {governor: performance, max_wakeup_latency_us: 20}
kvm_modules:
  kvm: {halt_poll_ns: 0}
"""


@pytest.fixture(scope="module")
def cpu_template(tmp_path_factory):
    files = synthetic_host(n_cpus=4, iommu_groups=0)
    # two movable kernel threads and a per-CPU one (PF_NO_SETAFFINITY), as tests.test_pinned_tuning builds them
    from tests.test_pinned_tuning import PF_KTHREAD, PF_NO_SETAFFINITY, task_files

    files.update(task_files({2: ("kthreadd", PF_KTHREAD, "0-3"), 15: ("rcu_preempt", PF_KTHREAD, "0-3"),
                             12: ("ksoftirqd/0", PF_KTHREAD | PF_NO_SETAFFINITY, "0")}))
    files.update({"proc/irq/default_smp_affinity": "f\n", "sys/devices/virtual/workqueue/cpumask": "f\n",
                  "sys/devices/virtual/workqueue/writeback/cpumask": "f\n",
                  "sys/module/kvm/parameters/halt_poll_ns": "200000\n",
                  # a BLS host: the boot arguments go into this entry's options line
                  "boot/loader/entries/abc-6.8.conf": "title Linux\nlinux /vmlinuz\noptions root=/dev/sda1 ro\n",
                  "usr/sbin/irqbalance": "", "etc/default/irqbalance": "#IRQBALANCE_ONESHOT=\n"})
    for irq in (24, 25):
        files[f"proc/irq/{irq}/smp_affinity_list"] = "0-3\n"
    for cpu in range(4):
        base = f"sys/devices/system/cpu/cpufreq/policy{cpu}"
        files.update({f"{base}/affected_cpus": f"{cpu}\n", f"{base}/scaling_governor": "powersave\n",
                      f"{base}/scaling_available_governors": "performance powersave\n",
                      f"sys/devices/system/cpu/cpu{cpu}/power/pm_qos_resume_latency_us": "0\n"})
    root = write_tree(str(tmp_path_factory.mktemp("cpu-template") / "host"), files)
    profile = tmp_path_factory.mktemp("cpu-profile") / "cpus.yaml"
    profile.write_text(CPU_SECTIONS)
    return root, str(profile)


IOMMU_SRIOV = """
iommu: {mode: lazy}
sriov:
  enp8s0f0np0: {numvfs: 4, autoprobe: false}
"""


@pytest.fixture(scope="module")
def sriov_template(tmp_path_factory):
    """A snapshot of the ConnectX-4 Lx capture (tests/fixtures/pci): its PF 08:00.0 has 2 VFs, so 4 is
    written as 0 then 4. Added here: each PF's sriov_drivers_autoprobe at the kernel's default (1),
    a CPU vendor and a BLS entry (the IOMMU arguments go into its options line)."""
    from kvmtune.entry import main
    from tests.test_iommu_sriov import BLS, CPUINFO
    from tests.test_pci import PCI

    root = tmp_path_factory.mktemp("sriov-template") / "host"
    assert main(["--root", str(PCI / "sriov-cx4lx-2pf-4vf"), "snapshot", str(root)]) == 0
    for pf in ("0000:08:00.0", "0000:08:00.1"):
        (root / "sys/bus/pci/devices" / pf / "sriov_drivers_autoprobe").write_text("1\n")
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text(CPUINFO)
    (root / "boot/loader/entries").mkdir(parents=True, exist_ok=True)
    (root / "boot/loader/entries/a.conf").write_text(BLS)
    profile = tmp_path_factory.mktemp("sriov-profile") / "iommu-sriov.yaml"
    profile.write_text(IOMMU_SRIOV)
    return str(root), str(profile)


@pytest.fixture(scope="module")
def vfio_template(tmp_path_factory):
    """The consumer board's GPU and audio function (tests/fixtures/vfio_trees.py) with the KVM
    module options: driver_override of both, the modprobe.d file they share, modules-load.d."""
    from pathlib import Path

    from tests.fixtures.vfio_trees import vfio_host

    root = vfio_host(Path(tmp_path_factory.mktemp("vfio-template")), "consumer-asrock-z370-gt1030")
    write_tree(root, {"sys/module/kvm/parameters/halt_poll_ns": "200000\n"})
    profile = tmp_path_factory.mktemp("vfio-profile") / "vfio.yaml"
    profile.write_text('vfio: {devices: ["0000:01:00.0"]}\nkvm_modules: {kvm: {halt_poll_ns: 0}}\n')
    return root, str(profile)


def test_the_vfio_binding_survives_a_kill_at_every_mutation_too(vfio_template, tmp_path, run_cli):
    _every_kill_point(vfio_template, tmp_path, run_cli)


def test_a_kill_before_or_after_every_mutation_is_rolled_back_exactly(template, tmp_path, run_cli):
    _every_kill_point(template, tmp_path, run_cli)


def test_the_cpu_sections_survive_a_kill_at_every_mutation_too(cpu_template, tmp_path, run_cli):
    """IRQ affinities, cpumasks, power knobs, the modprobe and systemd drop-ins: the same journal."""
    _every_kill_point(cpu_template, tmp_path, run_cli)


def test_the_iommu_and_sriov_sections_survive_a_kill_at_every_mutation_too(sriov_template, tmp_path, run_cli):
    """sriov_drivers_autoprobe, sriov_numvfs written 0 then 4, the udev rule, the boot entry."""
    _every_kill_point(sriov_template, tmp_path, run_cli, at_least=10)


def _every_kill_point(template, tmp_path, run_cli, at_least: int = 20) -> None:
    template_root, profile = template
    root = fresh(template_root, tmp_path)
    original = tree_state(root)
    code, total, _ = fork_run(["--root", root, "apply", profile, "--json"])
    assert code == 0 and total > at_least, (code, total)
    restored(run_cli, root, original, "complete run")
    failures = []
    for n in range(1, total + 1):
        for when in ("before", "after"):
            root = fresh(template_root, tmp_path)
            code, _, _ = fork_run(["--root", root, "apply", profile, "--json"], kill_at=n, when=when)
            assert code == -signal.SIGKILL, (n, when, code)
            code, out, err = run_cli("--root", root, "rollback", "--json")
            now = tree_state(root)
            if code != 0 or now != original:
                failures.append((n, when, code, err.strip()[:120], tree_diff(original, now, 4)))
                continue
            # The host is whole again: a fresh apply works and rolls back.
            code, out, err = run_cli("--root", root, "apply", profile, "--json")
            if code != 0:
                failures.append((n, when, "re-apply", code, err.strip()[:120]))
                continue
            code, _, _ = run_cli("--root", root, "rollback", "--json")
            if code != 0 or tree_state(root) != original:
                failures.append((n, when, "second rollback", tree_diff(original, tree_state(root), 4)))
    assert not failures, f"{len(failures)} of {2 * total} kill points not restored: {failures[:6]}"


def test_an_interrupted_run_is_named_and_needs_rollback_or_resume(template, tmp_path, run_cli):
    template_root, profile = template
    root = fresh(template_root, tmp_path)
    original = tree_state(root)
    code, total, _ = fork_run(["--root", root, "apply", profile, "--json"])
    run_cli("--root", root, "rollback", "--json")
    code, _, _ = fork_run(["--root", root, "apply", profile, "--json"], kill_at=total // 2)
    assert code == -signal.SIGKILL
    code, out, err = run_cli("--root", root, "apply", profile, "--json")
    assert code == 5 and "interrupted" in err and "rollback" in err and "--resume" in err, (code, err)
    code, out, err = run_cli("--root", root, "apply", profile, "--resume", "--json")
    assert code == 0, err
    code, out, err = run_cli("--root", root, "verify", profile, "--json")
    assert code == 0, out
    restored(run_cli, root, original, "after resume")


def test_real_sigkill_at_random_moments(template, tmp_path, run_cli):
    template_root, profile = template
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    argv = [sys.executable, "-m", "kvmtune", "--root"]
    root = fresh(template_root, tmp_path)
    original = tree_state(root)
    start = time.perf_counter()
    subprocess.run(argv + [root, "apply", profile, "--json"], env=env, capture_output=True, check=True)
    span = time.perf_counter() - start
    restored(run_cli, root, original, "complete run")
    rng = random.Random(20261126)
    failures = []
    for i in range(30):
        root = fresh(template_root, tmp_path)
        proc = subprocess.Popen(argv + [root, "apply", profile, "--json"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * span)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        code, out, err = run_cli("--root", root, "rollback", "--json")
        now = tree_state(root)
        if code != 0 or now != original:
            failures.append((i, code, err.strip()[:100], tree_diff(original, now, 4)))
    assert not failures, failures[:5]


def test_a_kill_during_rollback_is_finished_by_the_next_rollback(template, tmp_path, run_cli):
    template_root, profile = template
    root = fresh(template_root, tmp_path)
    original = tree_state(root)
    fork_run(["--root", root, "apply", profile, "--json"])
    code, total, _ = fork_run(["--root", root, "rollback", "--json"])
    assert code == 0 and tree_state(root) == original
    failures = []
    for n in range(1, total + 1):
        root = fresh(template_root, tmp_path)
        assert fork_run(["--root", root, "apply", profile, "--json"])[0] == 0
        code, _, _ = fork_run(["--root", root, "rollback", "--json"], kill_at=n)
        assert code == -signal.SIGKILL
        code, out, err = run_cli("--root", root, "rollback", "--json")
        if code != 0 or tree_state(root) != original:
            failures.append((n, code, err.strip()[:100], tree_diff(original, tree_state(root), 4)))
    assert not failures, f"{len(failures)} of {total}: {failures[:5]}"
