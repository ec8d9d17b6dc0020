"""Verdicts an operator would check, on synthetic hosts and captured real machines."""

import os

import pytest

from tests.conftest import by_id
from tests.fixtures.synthetic import write_tree, host as synthetic_host


def report_of(check_json, root, *extra):
    code, report = check_json(root, *extra)
    return code, report, by_id(report)


def test_healthy_intel_host_is_ready(host_roots, check_json):
    code, report, c = report_of(check_json, host_roots["synthetic-intel-vtx"])
    assert code == 0 and report["ready"] is True
    assert c["cpu.virt"]["status"] == "pass"
    assert c["cpu.virt"]["data"]["capabilities"] == {
        "ept": True, "vpid": True, "flexpriority": True, "tpr_shadow": True, "vnmi": True,
        "unrestricted_guest": True}
    assert c["kvm.modules"]["status"] == "pass"
    assert "kvm_intel (loaded)" in c["kvm.modules"]["detail"]
    assert c["iommu"]["status"] == "pass" and "48 IOMMU groups" in c["iommu"]["detail"]
    # cgroup v2: no v1 names (cpuacct, devices, blkio) may be demanded.
    assert c["cgroups"]["status"] == "pass"
    assert c["kvm.access"]["status"] == "skip"


def test_shadow_paging_warns_and_explains_the_override(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["synthetic-intel-shadow-paging"])
    mods = c["kvm.modules"]
    assert mods["status"] == "warn"
    assert "kvm_intel.ept=N (shadow paging" in mods["detail"]
    assert "requested 1 but the kernel turned it off" in mods["detail"]
    assert "unrestricted_guest=N" in mods["detail"]
    assert report["ready"] is True  # slower, not broken
    _, strict = check_json(host_roots["synthetic-intel-shadow-paging"], "--strict")
    assert strict["ready"] is False


def test_amd_sev_host_reports_generations(host_roots, check_json):
    _, _, c = report_of(check_json, host_roots["synthetic-amd-sev"])
    assert c["cpu.virt"]["status"] == "pass"
    assert c["cpu.virt"]["data"]["extension"] == "svm"
    assert c["cpu.virt"]["data"]["capabilities"]["npt"] is True
    assert c["secure_guest"]["status"] == "pass"
    assert c["secure_guest"]["detail"] == "enabled: SEV, SEV-ES"
    assert c["iommu"]["status"] == "pass"


def test_vtx_disabled_in_firmware_is_diagnosed_not_denied(host_roots, check_json):
    code, report, c = report_of(check_json, host_roots["synthetic-vtx-disabled-in-firmware"])
    assert code == 1 and report["ready"] is False
    assert c["cpu.virt"]["status"] == "warn"  # a flag alone is never the verdict
    assert "firmware disabled it" in c["cpu.virt"]["detail"]
    assert "firmware setup" in c["cpu.virt"]["hint"]
    assert c["kvm.device"]["status"] == "fail"
    assert "modprobe kvm_intel" in c["kvm.device"]["hint"]
    assert "kvm.device fail" in c["ready"]["detail"]
    assert c["iommu"]["status"] == "warn"
    assert "intel_iommu=on" in c["iommu"]["hint"] and "iommu=1" not in c["iommu"]["hint"]


def test_nested_guest_with_vmx(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["synthetic-nested-guest"])
    assert report["host"]["cpu"]["hypervisor"] is True
    assert c["cpu.virt"]["status"] == "pass"
    assert "running under a hypervisor" in c["cpu.virt"]["detail"]
    assert c["kvm.modules"]["status"] == "warn"
    assert "enable_apicv=N" in c["kvm.modules"]["detail"]
    assert c["iommu"]["detail"].startswith("no ACPI DMAR table: this guest has no virtual IOMMU")


def test_missing_dev_kvm_with_module_loaded_points_at_udev(host_roots, check_json):
    code, _, c = report_of(check_json, host_roots["synthetic-no-dev-kvm"])
    assert code == 1
    assert c["kvm.device"]["status"] == "fail"
    assert "udevadm trigger" in c["kvm.device"]["hint"]


def test_ksm_savings_and_cross_node_merging(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["synthetic-ksm-running"])
    ksm = report["host"]["ksm"]
    assert ksm["run"] == 1 and ksm["state"] == "running"
    assert ksm["saved_bytes"] == 65280 * 4096
    assert c["ksm"]["status"] == "warn"
    assert "merge_across_nodes=0" in c["ksm"]["hint"]
    assert "255.0 MiB" in c["ksm"]["detail"]


def test_hugepage_pools_per_size_and_node(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["synthetic-hugepage-pools"])
    nodes = report["host"]["numa"]["nodes"]
    assert nodes["0"]["hugepages"]["2048"] == {"total": 1024, "free": 768, "surplus": 0}
    assert nodes["1"]["hugepages"]["1048576"]["total"] == 4
    pools = report["host"]["memory"]["hugepages"]["pools"]
    assert pools["1048576"]["total"] == 8 and pools["2048"]["free"] == 1536
    assert c["memory.hugepages"]["status"] == "warn"
    assert "no hugetlbfs mount serves 1G" in c["memory.hugepages"]["detail"]
    assert "pagesize=1G" in c["memory.hugepages"]["hint"]


def test_an_empty_pool_size_is_zero_on_every_node_without_reading_them(host_roots, check_json, tmp_path):
    """The kernel's global count is the sum of its nodes': a size with no page anywhere needs
    no per-node read (96 reads fewer on 16 nodes); a size with pages is read node by node."""
    import shutil

    root = tmp_path / "pools"
    shutil.copytree(host_roots["synthetic-hugepage-pools"], root, symlinks=True)
    node1g = root / "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages"
    (root / "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages").write_text("0\n")
    node1g.unlink()
    os.mkfifo(node1g)  # were it read, the node's total would be None ("not a regular file")
    _, report, c = report_of(check_json, str(root))
    nodes = report["host"]["numa"]["nodes"]
    assert nodes["1"]["hugepages"]["1048576"] == {"total": 0, "free": 0, "surplus": 0}
    assert nodes["0"]["hugepages"]["2048"] == {"total": 1024, "free": 768, "surplus": 0}


def test_1024_cpu_16_node_host(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["synthetic-1024cpu-16node"])
    cpu, numa = report["host"]["cpu"], report["host"]["numa"]
    assert cpu["sockets"] == 16 and len(cpu["online"]) == 1024
    assert len(numa["nodes"]) == 16
    assert numa["nodes"]["15"]["cpus"] == list(range(960, 1024))
    assert numa["distances"]["3"]["3"] == 10 and numa["distances"]["3"]["4"] == 21
    assert c["numa"]["status"] == "info" and "16 nodes" in c["numa"]["detail"]


# Real machines, captured by other projects (tests/fixtures/hosts/SOURCES.md).

def test_gold6230_sub_numa_clustering(host_roots, check_json):
    _, report, c = report_of(check_json, host_roots["intel-gold6230-80c-4n-snc"])
    numa = report["host"]["numa"]
    assert report["host"]["cpu"]["sockets"] == 2
    assert sorted(numa["nodes"]) == ["0", "1", "2", "3"]
    assert sorted(set(numa["distances"]["0"].values())) == [10, 11, 21]
    assert c["cpu.virt"]["status"] == "pass"
    # The dump holds no /dev: absence proves nothing, so it is unknown and blocks "ready".
    assert c["kvm.device"]["status"] == "unknown"
    assert report["ready"] is False


def test_offline_cpus_and_node_zero(host_roots, check_json):
    _, report, _ = report_of(check_json, host_roots["intel-e5v3-offline-cpu0-node0"])
    numa = report["host"]["numa"]
    assert list(numa["nodes"]) == ["1"]
    # node1/cpulist still lists offline CPUs 1,3,21,23; only online ones count.
    assert numa["nodes"]["1"]["cpus"] == [c for c in range(4, 21) if c % 2 == 1]
    assert report["host"]["cpu"]["online"] == list(range(4, 21))
    assert numa["distances"]["1"] == {"0": 21, "1": 10}


def test_sparse_nodes_from_cpumap(host_roots, check_json):
    _, report, _ = report_of(check_json, host_roots["intel-x7550-64c-3n"])
    nodes = report["host"]["numa"]["nodes"]
    assert sorted(nodes) == ["0", "2", "3"]
    assert len(nodes["0"]["cpus"]) == 32


@pytest.mark.parametrize("name, paging", [("amd-opteron6134-32c-8n", "NPT"),
                                          ("intel-x3950m2-96c-4n", "EPT")])
def test_old_cpus_without_second_level_paging_warn(name, paging, host_roots, check_json):
    _, _, c = report_of(check_json, host_roots[name])
    assert c["cpu.virt"]["status"] == "warn"
    assert f"no {paging}: KVM falls back to shadow paging" in c["cpu.virt"]["detail"]


def test_guest_without_vmx_is_explained(host_roots, check_json):
    _, _, c = report_of(check_json, host_roots["kvm-skylake-2c"])
    assert c["cpu.virt"]["status"] == "warn"
    assert "hypervisor does not expose VT-x" in c["cpu.virt"]["detail"]
    assert "nested" in c["cpu.virt"]["hint"]


def test_hugepages_reserved_on_real_dump(host_roots, check_json):
    _, report, _ = report_of(check_json, host_roots["intel-silver4108-32c-2n"])
    nodes = report["host"]["numa"]["nodes"]
    assert nodes["0"]["hugepages"]["2048"]["total"] == 2048
    assert nodes["1"]["hugepages"]["2048"]["total"] == 2048


# Bad input: unknown with a reason, documented exit code, never a traceback.

def test_truncated_cpuinfo(tmp_path, check_json):
    files = synthetic_host()
    files["proc/cpuinfo"] = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel na"
    code, _, c = report_of(check_json, write_tree(str(tmp_path), files))
    assert c["cpu.virt"]["status"] == "unknown"
    assert "truncated" in c["cpu.virt"]["detail"]
    assert code == 0  # KVM's own checks still pass in the snapshot


def test_garbage_in_sysfs(tmp_path, check_json):
    files = synthetic_host()
    files["sys/devices/system/node/online"] = "zz-top\n"
    files["sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"] = "lots\n"
    files["sys/devices/system/cpu/online"] = "0-\n"
    _, report, c = report_of(check_json, write_tree(str(tmp_path), files))
    assert c["memory.hugepages"]["status"] == "unknown"
    assert "nr_hugepages" in c["memory.hugepages"]["detail"]
    # Garbage node list: the node directories are listed instead, and the problem recorded.
    assert sorted(report["host"]["numa"]["nodes"]) == ["0", "1"]


def test_missing_sys(tmp_path, check_json):
    files = {k: v for k, v in synthetic_host().items() if not k.startswith("sys/")}
    code, report, c = report_of(check_json, write_tree(str(tmp_path), files))
    for check_id in ("numa", "memory.hugepages", "memory.thp", "ksm", "kvm.modules", "cpu.vulnerabilities"):
        assert c[check_id]["status"] == "unknown", check_id
    assert code in (0, 1)


def test_unreadable_file(tmp_path, check_json):
    files = synthetic_host()
    root = write_tree(str(tmp_path), {k: v for k, v in files.items() if k != "proc/meminfo"})
    (tmp_path / "proc" / "meminfo").mkdir()  # reading it fails with EISDIR, even as root
    code, report, c = report_of(check_json, root)
    assert "not a regular file" in report["host"]["memory"]["problem"]
    assert code == 0


def facts_as_live(root, live=True, **overrides):
    """A snapshot's facts, as if read on a live host, with some facts replaced (judges are pure)."""
    from kvmtune.checks import read_phase
    from kvmtune.checks.facts import Facts
    from kvmtune.host.door import Host

    facts = read_phase(Host(str(root)), [], [])
    values = {n: object.__getattribute__(facts, "_values")[n] for n in facts.names}
    return Facts(str(root), live, None, {**values, **overrides})


def test_firmware_disabled_vtx_is_named_from_the_kernel_log(host_roots):
    """A live host whose kernel logged why VT-x is off: the verdict quotes it."""
    from kvmtune.checks import run_checks

    log = ("x86/cpu: VMX (outside TXT) disabled by BIOS", "kvm: no hardware support")
    facts = facts_as_live(host_roots["synthetic-vtx-disabled-in-firmware"], kvm=None, virt_refusals=log, cpuid=None)
    check = next(c for c in run_checks(facts, only=["cpu.virt"]).checks if c.id == "cpu.virt")
    assert check.status == "warn"
    assert check.detail == "no vmx flag; the kernel logged: kvm: no hardware support"
    assert check.data["kernel_log"][0] == "x86/cpu: VMX (outside TXT) disabled by BIOS"
    assert "firmware setup" in check.hint


@pytest.mark.parametrize("cpuid, said", [
    ({"vmx": True, "svm": False}, "the CPU reports VT-x (CPUID) but the kernel hides the vmx flag"),
    ({"vmx": False, "svm": False}, "CPUID says this CPU has no VT-x"),
])
def test_cpuid_tells_a_hidden_vmx_from_an_absent_one(host_roots, cpuid, said):
    from kvmtune.checks import run_checks

    facts = facts_as_live(host_roots["synthetic-vtx-disabled-in-firmware"], kvm=None, virt_refusals=(), cpuid=cpuid)
    check = next(c for c in run_checks(facts, only=["cpu.virt"]).checks if c.id == "cpu.virt")
    assert check.status == "warn" and said in check.detail, check.detail
    assert "nested" not in (check.hint or "")


def test_cpuid_that_cannot_run_is_unknown_not_a_guess(host_roots):
    from kvmtune.checks import run_checks
    from kvmtune.checks.facts import Unknown

    facts = facts_as_live(host_roots["synthetic-vtx-disabled-in-firmware"], kvm=None, virt_refusals=(),
                          cpuid=Unknown("OSError: no executable memory"))
    check = next(c for c in run_checks(facts, only=["cpu.virt"]).checks if c.id == "cpu.virt")
    assert check.status == "unknown" and "no executable memory" in check.detail


def _functional_with(probe_fields, host_roots):
    from kvmtune.checks import run_checks
    from kvmtune.checks.read import KvmAnswers
    from kvmtune.probe.kvm_ioctl import KvmProbe

    probe = KvmProbe()
    for key, value in probe_fields.items():
        setattr(probe, key, value)
    facts = facts_as_live(host_roots["synthetic-intel-vtx"], kvm=KvmAnswers(probe, None))
    report = run_checks(facts, only=["kvm.functional"])
    return next(c for c in report.checks if c.id == "kvm.functional"), report


def test_ebusy_means_another_hypervisor_holds_vtx(host_roots):
    import errno

    check, report = _functional_with({"api_version": 12, "failed_stage": "create_vm", "errno": errno.EBUSY,
                                      "error": "Device or resource busy"}, host_roots)
    assert check.status == "fail" and report.ready is False
    assert "another hypervisor holds VT-x/AMD-V" in check.detail
    assert "VirtualBox" in check.hint and check.data["errno"] == "EBUSY"


def test_eacces_means_kvm_could_not_be_asked(host_roots):
    import errno

    check, report = _functional_with({"failed_stage": "open", "errno": errno.EACCES, "error": "Permission denied"},
                                     host_roots)
    assert check.status == "unknown" and "may not open /dev/kvm" in check.detail and report.ready is False
    assert "usermod -aG kvm" in check.hint
