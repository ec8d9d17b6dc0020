"""Hosts beyond x86 (issue 23): facts and verdicts on real aarch64, POWER and s390x dumps.

The truth is each dump's upstream expected output (``<host>/upstream/``: lscpu's or hwloc's),
cited in tests/fixtures/hosts/SOURCES-arch.md.
"""

from __future__ import annotations

import shutil

import pytest

from kvmtune.probe import parse
from tests.conftest import HOSTS

KUNPENG = "arm64-hisilicon-kunpeng920-128c-4n"


def host_json(check_json, name):
    _, report = check_json(HOSTS / name)
    return report


def test_nul_after_the_newline_is_parsed():
    # The Kunpeng dump's list files end in "\n\0" (node/node0/cpulist is the 6 bytes "0-31\n\0").
    raw = (HOSTS / KUNPENG / "sys/devices/system/node/node0/cpulist").read_bytes()
    assert raw == b"0-31\n\0"
    assert parse.cpulist(raw.decode()) == list(range(32))
    mask = (HOSTS / KUNPENG / "sys/devices/system/node/node1/cpumap").read_bytes().decode()
    assert parse.cpumask(mask) == list(range(32, 64))


def test_nul_terminated_node_lists_give_each_node_its_cpus(check_json):
    # hwloc's console for this dump: 4 NUMA nodes of 32 cores each.
    report = host_json(check_json, KUNPENG)
    nodes = report["host"]["numa"]["nodes"]
    assert {k: v["cpus"] for k, v in nodes.items()} == {
        str(n): list(range(32 * n, 32 * n + 32)) for n in range(4)}
    assert "unknown" not in report["host"]


def test_a_node_whose_cpus_cannot_be_read_is_named_in_unknown(check_json, tmp_path):
    root = tmp_path / "h"
    shutil.copytree(HOSTS / KUNPENG, root)
    (root / "sys/devices/system/node/node2/cpulist").write_bytes(b"0-3x\n")
    report = host_json(check_json, root)
    assert report["host"]["numa"]["nodes"]["2"]["cpus"] == []
    unknown = report["host"]["unknown"]
    assert any("node2" in k or "node2" in v for k, v in unknown.items()), unknown


@pytest.mark.parametrize("name, sockets", [
    # lscpu's expected output (upstream/lscpu-*) says "Socket(s): 16" and "Socket(s): 4":
    # the package ids are all -1, so lscpu counts the distinct core_siblings masks.
    ("ppc64-power7-pseries-8231e2b-64c-2n", 16),
    ("ppc64-power7-pseries-8233e8b-16c", 4),
    # hwloc's console: 2 packages, numbered 36 and 8442 by the firmware.
    (KUNPENG, 2),
])
def test_sockets(check_json, name, sockets):
    assert host_json(check_json, name)["host"]["cpu"]["sockets"] == sockets


def test_package_id_minus_one_is_never_one_socket(check_json, tmp_path):
    # The X-Gene Mustang: package id -1 on all 8 CPUs, each CPU its own core_siblings
    # (lscpu would print 8); without core_siblings the count is unknown, not 1.
    assert host_json(check_json, HOSTS / "arm64-apm-xgene-mustang-8c")["host"]["cpu"]["sockets"] == 8
    root = tmp_path / "h"
    shutil.copytree(HOSTS / "arm64-apm-xgene-mustang-8c", root)
    for path in root.glob("sys/devices/system/cpu/cpu*/topology/core_siblings*"):
        path.unlink()
    report = host_json(check_json, root)
    assert report["host"]["cpu"]["sockets"] is None
    assert "cpu.sockets" in report["host"]["unknown"]


@pytest.mark.parametrize("name, expect", [
    # lscpu's expected output: four model sections, one per MIDR part (cpuinfo: cpu3-4 are
    # part 0xd4d, cpu5-6 0xd47).
    ("arm64-sm8550-a510-a710-a715-x3-8c-hybrid", {
        "arch": "aarch64", "vendor": "ARM",
        "core_types": [{"vendor": "ARM", "model": "Cortex-A510", "cpus": "0-2"},
                       {"vendor": "ARM", "model": "Cortex-A715", "cpus": "3-4"},
                       {"vendor": "ARM", "model": "Cortex-A710", "cpus": "5-6"},
                       {"vendor": "ARM", "model": "Cortex-X3", "cpus": "7"}]}),
    # hwloc's xml: two cpukinds, 10 CPUs each (names from lscpu-arm.c's table).
    ("arm64-nvidia-gb10-x925-a725-20c-hybrid", {"arch": "aarch64", "vendor": "ARM"}),
    (KUNPENG, {"arch": "aarch64", "vendor": "HiSilicon", "model_name": "Kunpeng-920"}),
    # The old aarch64 format: one block shared by all CPUs.
    ("arm64-apm-xgene-mustang-8c", {"arch": "aarch64", "vendor": "APM", "model_name": "X-Gene",
                                     "core_types": [{"vendor": "APM", "model": "X-Gene", "cpus": "0-7"}]}),
    ("ppc64-power7-pseries-8231e2b-64c-2n", {
        "arch": "ppc64", "model_name": "POWER7 (architected), altivec supported",
        "platform": "pSeries", "machine": "CHRP IBM,8231-E2B"}),
    ("s390x-z13-lpar-drawer-8c", {"arch": "s390x", "vendor": "IBM/S390", "machine": "2964", "platform": "LPAR"}),
    ("s390x-z196-kvm-guest-3c", {"arch": "s390x", "machine": "2817", "platform": "KVM/Linux"}),
    ("s390x-z16-3931-8c", {"arch": "s390x", "machine": "3931", "platform": None}),
])
def test_cpu_identity_per_architecture(check_json, name, expect):
    cpu = host_json(check_json, name)["host"]["cpu"]
    assert {k: cpu[k] for k in expect} == expect


def test_gb10_core_kinds_follow_midr_not_capacity(check_json):
    types = host_json(check_json, "arm64-nvidia-gb10-x925-a725-20c-hybrid")["host"]["cpu"]["core_types"]
    assert sorted(t["model"] for t in types) == ["Cortex-A725", "Cortex-X925"]
    assert sum(len(parse.cpulist(t["cpus"])) for t in types) == 20


def test_s390x_features_and_facilities(check_json):
    cpu = host_json(check_json, "s390x-z16-3931-8c")["host"]["cpu"]
    assert "sie" in cpu["features"] and 2 in cpu["facilities"]
    assert "sie" not in host_json(check_json, "s390x-z196-lpar-20c-offline")["host"]["cpu"]["features"]


def virt(check_json, name):
    checks = {c["id"]: c for c in host_json(check_json, name)["checks"]}
    return checks["cpu.virt"]


@pytest.mark.parametrize("name, status, words", [
    ("ppc64-power7-pseries-8231e2b-64c-2n", "warn", "KVM-HV needs bare metal (PowerNV)"),
    ("s390x-z13-lpar-drawer-8c", "pass", "cpuinfo lists sie"),
    ("s390x-z16-3931-8c", "pass", "cpuinfo lists sie"),
    # A 2011 kernel: no sie in features, which before Linux 4.5 decides nothing.
    ("s390x-z196-lpar-20c-offline", "unknown", "before Linux 4.5 never list it"),
    (KUNPENG, "unknown", "cannot tell whether the kernel runs at EL2"),
])
def test_cpu_virt_per_architecture_on_real_dumps(check_json, name, status, words):
    check = virt(check_json, name)
    assert (check["status"], words in check["detail"]) == (status, True), check
    assert "VT-x" not in check["title"] and "truncated" not in check["detail"]


@pytest.mark.parametrize("name, status, words", [
    # Synthetic: no PowerNV dump exists, so this is the pSeries POWER7's cpuinfo with PowerNV lines.
    ("synthetic-powernv", "pass", "bare metal (PowerNV)"),
    ("synthetic-aarch64-dev-kvm", "pass", "/dev/kvm exists"),
    ("synthetic-s390x-no-sie-5.14", "warn", "SIE is not offered"),
])
def test_cpu_virt_per_architecture_on_synthetic_hosts(host_roots, check_json, name, status, words):
    check = virt(check_json, host_roots[name])
    assert (check["status"], words in check["detail"]) == (status, True), check


@pytest.mark.parametrize("log, status, words", [
    (("kvm [1]: IPA Size Limit: 48 bits", "kvm [1]: VHE mode initialized successfully"), "pass", "VHE mode"),
    (("kvm [1]: Hyp nVHE mode initialized successfully",), "pass", "nVHE"),
    (("kvm [1]: HYP mode not available",), "warn", "HYP mode not available"),
    (("kvm [1]: error initializing Hyp mode: -22",), "warn", "error initializing"),
])
def test_aarch64_decides_from_the_kernel_log(host_roots, log, status, words):
    # The lines are arch/arm64/kvm/arm.c's kvm_info/kvm_err (quoted in tests/fixtures/hosts/SOURCES-arch.md).
    from kvmtune.checks import run_checks
    from tests.test_checks import facts_as_live

    root = HOSTS / KUNPENG
    facts = facts_as_live(root, virt_refusals=log)
    check = next(c for c in run_checks(facts, only=["cpu.virt"]).checks if c.id == "cpu.virt")
    assert (check.status, words in check.detail) == (status, True), check


def test_a_live_non_x86_host_never_runs_the_x86_guest(host_roots):
    from kvmtune.checks import run_checks
    from tests.test_checks import facts_as_live

    facts = facts_as_live(host_roots["synthetic-powernv"], kvm=None)
    check = next(c for c in run_checks(facts, only=["kvm.functional"]).checks if c.id == "kvm.functional")
    assert check.status == "skip" and "x86 code" in check.detail


@pytest.mark.parametrize("name", ["arm64-aws-graviton2-n1-1c-vm", "ppc64-power7-pseries-8233e8b-16c",
                                  "s390x-z16-3931-8c"])
def test_bench_refuses_a_non_x86_host_with_exit_4(name):
    from kvmtune.commands.bench import refuse_foreign_arch
    from kvmtune.errors import EXIT_REFUSED, Refused
    from kvmtune.host.door import Host

    with pytest.raises(Refused) as err:
        refuse_foreign_arch(Host(str(HOSTS / name)))
    assert err.value.exit_code == EXIT_REFUSED and "x86 guest code" in str(err.value)


def test_bench_goes_on_on_x86():
    from kvmtune.commands.bench import refuse_foreign_arch
    from kvmtune.host.door import Host

    refuse_foreign_arch(Host(str(HOSTS / "intel-l5640-24c-2n")))


@pytest.mark.parametrize("name, words", [
    (KUNPENG, "host-passthrough"), ("ppc64-power7-pseries-8231e2b-64c-2n", "host-passthrough"),
    ("s390x-z13-lpar-drawer-8c", "host-passthrough")])
def test_cpu_models_on_non_x86_is_not_applicable(run_cli, name, words):
    import json

    code, out, err = run_cli("cpu-models", "--root", str(HOSTS / name), "--json")
    result = json.loads(out)
    assert (code, result["applicable"], err) == (0, False, "")
    assert words in result["instead"] and "migrat" in result["migration"]
    code, out, _ = run_cli("cpu-models", "--root", str(HOSTS / name))
    assert code == 0 and "judged for x86" in out


@pytest.mark.parametrize("name, status, words", [
    (KUNPENG, "unknown", "Arm CCA"),
    ("ppc64-power7-pseries-8231e2b-64c-2n", "info", "POWER7 has no PEF"),
    ("s390x-z13-lpar-drawer-8c", "info", "predates Secure Execution"),
    ("s390x-z16-3931-8c", "unknown", "Secure Execution"),
])
def test_secure_guest_words_per_architecture(check_json, name, status, words):
    check = {c["id"]: c for c in host_json(check_json, name)["checks"]}["secure_guest"]
    assert (check["status"], words in check["title"] + check["detail"]) == (status, True), check
    assert "SEV" not in check["detail"] and "TDX" not in check["detail"]



# The aarch64 guest probe: its machine code is held to GNU as, its ioctl sequence to a recorded fake.

def test_arm64_guest_code_is_what_the_assembler_makes(tmp_path):
    import shutil as sh
    import subprocess

    from kvmtune.probe.kvm_arm64 import GUEST_CODE, GUEST_LISTING

    gas, objcopy = sh.which("aarch64-linux-gnu-as"), sh.which("aarch64-linux-gnu-objcopy")
    if not (gas and objcopy):
        pytest.skip("aarch64-linux-gnu-as is missing (apt-get install binutils-aarch64-linux-gnu; .ci/run does)")
    (tmp_path / "g.s").write_text(GUEST_LISTING)
    subprocess.run([gas, "-o", str(tmp_path / "g.o"), str(tmp_path / "g.s")], check=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", str(tmp_path / "g.o"), str(tmp_path / "g.bin")],
                   check=True)
    assert (tmp_path / "g.bin").read_bytes() == GUEST_CODE


class RecordedKernel:
    """The answers an arm64 KVM gives the probe (kvm_run layout from include/uapi/linux/kvm.h):
    a 48-bit IPA limit, target KVM_ARM_TARGET_GENERIC_V8 (5), and the guest's 4-byte store to
    0x20000 coming back as KVM_EXIT_MMIO."""

    def __init__(self, ipa=48, refuse=None, exit_reason=6, value=0x4D544B57):
        self.calls, self.ipa, self.refuse, self.exit_reason, self.value = [], ipa, refuse, exit_reason, value
        self.memory = {}
        self.closed = []

    def ioctl(self, fd, request, arg=0):
        import errno
        import struct

        from kvmtune.probe import kvm_arm64 as a

        names = {a.KVM_GET_API_VERSION: "get_api_version", a.KVM_CHECK_EXTENSION: "check_extension",
                 a.KVM_CREATE_VM: "create_vm", a.KVM_SET_USER_MEMORY_REGION: "set_user_memory_region",
                 a.KVM_ARM_PREFERRED_TARGET: "preferred_target", a.KVM_CREATE_VCPU: "create_vcpu",
                 a.KVM_ARM_VCPU_INIT: "vcpu_init", a.KVM_SET_ONE_REG: "set_one_reg",
                 a.KVM_GET_VCPU_MMAP_SIZE: "get_vcpu_mmap_size", a.KVM_RUN: "run"}
        name = names[request]
        self.calls.append((name, fd, arg if isinstance(arg, int) else bytes(arg)))
        if name == self.refuse:
            raise OSError(errno.EINVAL, "Invalid argument")
        if name == "get_api_version":
            return 12
        if name == "check_extension":
            return self.ipa if arg == a.KVM_CAP_ARM_VM_IPA_SIZE else 0
        if name == "create_vm":
            return 10
        if name == "preferred_target":
            struct.pack_into("=I", arg, 0, 5)
            return 0
        if name == "create_vcpu":
            return 11
        if name == "get_vcpu_mmap_size":
            return 4096
        if name == "run":
            struct.pack_into("=I", self.run, 8, self.exit_reason)
            struct.pack_into("=Q8sIB", self.run, 32, 0x20000, struct.pack("<I", self.value), 4, 1)
        return 0

    def guest_memory(self, size, code):
        self.memory["code"] = code
        return 0x7F0000000000

    def buffer_address(self, data):
        self.memory[0x7F00000F0000] = data
        return 0x7F00000F0000

    def map_run(self, fd, size):
        self.run = bytearray(size)
        return self.run

    def close(self, fd):
        self.closed.append(fd)


def test_arm64_probe_makes_the_calls_in_order_and_reads_the_mmio_write():
    import struct

    from kvmtune.probe.kvm_arm64 import GUEST_CODE, REG_PC, run_arm64_sequence

    kernel = RecordedKernel()
    result = run_arm64_sequence(kernel, 3)
    assert [c[0] for c in kernel.calls] == [
        "get_api_version", "check_extension", "create_vm", "set_user_memory_region", "preferred_target",
        "create_vcpu", "vcpu_init", "set_one_reg", "get_vcpu_mmap_size", "run"]
    calls = {c[0]: c for c in kernel.calls}
    assert calls["create_vm"][2] == 48  # KVM_VM_TYPE_ARM_IPA_SIZE(48)
    assert calls["vcpu_init"][1] == 11 and struct.unpack_from("=I", calls["vcpu_init"][2])[0] == 5
    reg_id, address = struct.unpack("=QQ", calls["set_one_reg"][2])
    assert reg_id == REG_PC and struct.unpack("=Q", kernel.memory[address])[0] == 0x10000
    slot, flags, phys, size, user = struct.unpack("=IIQQQ", calls["set_user_memory_region"][2])
    assert (phys, user) == (0x10000, 0x7F0000000000) and kernel.memory["code"] == GUEST_CODE
    assert result.guest_ran and result.exits == ["mmio"] and result.failed_stage is None
    assert sorted(kernel.closed) == [10, 11]


@pytest.mark.parametrize("kernel, stage, ran", [
    (RecordedKernel(ipa=0), None, True),  # no KVM_CAP_ARM_VM_IPA_SIZE: VM type 0, the 40-bit default
    (RecordedKernel(refuse="create_vm"), "create_vm", False),
    (RecordedKernel(refuse="vcpu_init"), "vcpu_init", False),
    (RecordedKernel(exit_reason=17), "run", False),  # KVM_EXIT_INTERNAL_ERROR
    (RecordedKernel(value=0x4D544B56), None, False),  # the write came, with the wrong value
])
def test_arm64_probe_names_the_stage_that_failed(kernel, stage, ran):
    from kvmtune.probe.kvm_arm64 import run_arm64_sequence

    result = run_arm64_sequence(kernel, 3)
    assert (result.failed_stage, result.guest_ran) == (stage, ran)
    if kernel.ipa == 0:
        assert dict((c[0], c[2]) for c in kernel.calls)["create_vm"] == 0


def test_kvm_functional_on_aarch64_judges_the_arm64_probe(host_roots):
    from kvmtune.checks import run_checks
    from kvmtune.checks.read import KvmAnswers
    from kvmtune.probe.kvm_arm64 import run_arm64_sequence
    from tests.test_checks import facts_as_live

    root = host_roots["synthetic-aarch64-dev-kvm"]
    for kernel, status, words in ((RecordedKernel(), "pass", "MMIO write"),
                                  (RecordedKernel(refuse="create_vcpu"), "fail", "create_vcpu")):
        probe = run_arm64_sequence(kernel, 3)
        probe.elapsed_ms = 1.0
        facts = facts_as_live(root, kvm=KvmAnswers(probe, None))
        check = next(c for c in run_checks(facts, only=["kvm.functional"]).checks if c.id == "kvm.functional")
        assert (check.status, words in check.detail) == (status, True), check


def test_a_live_aarch64_host_runs_the_arm64_probe_not_the_x86_one(monkeypatch, host_roots):
    from kvmtune.checks import read
    from kvmtune.probe import kvm_arm64, kvm_ioctl

    ran = []
    monkeypatch.setattr(kvm_arm64, "run_arm64_probe", lambda host: ran.append("arm64") or "arm64 result")
    monkeypatch.setattr(kvm_ioctl, "run_kvm_probe", lambda host, then=None: ran.append("x86"))

    class Got:
        wanted = ()
        dev_kvm = type("Node", (), {"exists": True})()
        cpu = type("Cpu", (), {"arch": "aarch64"})()

    class LiveHost:
        live = True

    answers = read._kvm(LiveHost(), Got())
    assert ran == ["arm64"] and answers.probe == "arm64 result"
