"""host.migration, the clock checks and the migration intent (issue 21 sections 1 and 3, issue 20's clock).

Fixture hosts are the captured trees (tests/fixtures/hosts, from ../shared/hosts: cpuinfo, no
kernel logs) and synthetic ones; a "kernel log" in a tree is the kvmtune-kernel-log file a
snapshot keeps. Expected values are read off the trees by hand (see each comment).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import build_root, live_kvm

SCHEMA = json.loads((Path(__file__).parent.parent / "kvmtune" / "schema" / "check-report.schema.json").read_text())
KEYS = ["tsc_khz", "tsc_source", "invariant_tsc", "tsc_scaling", "clocksource", "microcode", "kernel", "qemu",
        "libvirt", "machine_types"]
DPKG = """Package: zlib1g
Status: install ok installed
Version: 1:1.2.13.dfsg-1

Package: qemu-system-x86
Status: install ok installed
Architecture: amd64
Version: 1:7.2+dfsg-7+deb12u18+b3

Package: libvirt-daemon
Status: install ok installed
Version: 9.0.0-4+deb12u2
"""


def by_id(report):
    return {c["id"]: c for c in report["checks"]}


# -- parsers ---------------------------------------------------------------------------------

def test_the_refined_calibration_wins_over_the_early_value_and_unstable_lines_are_kept():
    from kvmtune.probe.clock import parse_log

    # Formats from arch/x86/kernel/tsc.c and kernel/time/clocksource.c.
    lines = ["tsc: Detected 2095.074 MHz processor", "Calibrating delay loop... 4190.14 BogoMIPS",
             "tsc: Refined TSC clocksource calibration: 2095.077 MHz",
             "clocksource: timekeeping watchdog on CPU3: Marking clocksource 'tsc' as unstable because the skew "
             "is too large:", "clocksource:                       'hpet' wd_nsec: 506 wd_now: 1 wd_last: 2",
             "tsc: Marking TSC unstable due to clocksource watchdog"]
    khz, kind, unstable, kept = parse_log(lines)
    assert (khz, kind) == (2095077, "refined")
    assert unstable == (lines[3], lines[5])
    assert "Calibrating delay loop... 4190.14 BogoMIPS" not in kept and lines[4] in kept
    assert parse_log(["tsc: Detected 2599.998 MHz processor"])[:2] == (2599998, "detected")
    assert parse_log(["tsc: Detected 2600 MHz TSC"])[:2] == (2600000, "detected")
    assert parse_log(["random: crng init done"]) == (None, None, (), ())


@pytest.mark.parametrize("model, mhz, khz", [
    ("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", "800.129", 2100000),  # the nominal, not the idle clock
    ("AMD EPYC 7451 24-Core Processor", "2894.214", 2894214),
    ("QEMU Virtual CPU version 2.5+", None, None),
])
def test_cpuinfo_frequency_prefers_the_nominal_in_the_model_name(model, mhz, khz):
    from kvmtune.probe.clock import cpuinfo_khz

    assert cpuinfo_khz(model, mhz) == khz


@pytest.mark.parametrize("version, upstream", [
    ("1:7.2+dfsg-7+deb12u18+b3", "7.2.0"), ("9.0.0-4+deb12u2", "9.0.0"), ("1:8.2.2+ds-0ubuntu1", "8.2.2"),
    ("7.2.0-14.el9_4", "7.2.0"), ("1:6.2+dfsg-2ubuntu6.24", "6.2.0"), ("10.1.0~rc1-1", "10.1.0"),
    ("git20240101-1", None), (None, None)])
def test_upstream_versions_drop_epoch_revision_and_repack_suffix(version, upstream):
    from kvmtune.probe.packages import upstream_version

    assert upstream_version(version) == upstream


def test_machine_types_come_from_libvirts_capabilities_cache():
    from kvmtune.probe.packages import parse_machine_types

    xml = ("<qemuCaps><machine type='kvm' name='pc-i440fx-7.2' hotplugCpus='yes' maxCpus='255'/>\n"
           "<machine type='kvm' name=\"pc-q35-7.2\" alias='q35'/><machine type='tcg' name='microvm'/></qemuCaps>")
    assert parse_machine_types(xml) == {"pc-i440fx-7.2", "pc-q35-7.2", "microvm"}


# -- host.migration on captured and synthetic trees -------------------------------------------

@pytest.mark.parametrize("name, expected", [
    # model name "@ 2.10GHz"; cpuinfo has no "vmx flags" line, so scaling is not known
    ("intel-gold6230-80c-4n-snc", {"tsc_khz": 2100000, "tsc_source": "cpuinfo", "invariant_tsc": True,
                                   "tsc_scaling": None, "microcode": "0x5000021"}),
    # AMD: tsc_scale in flags; no nominal in the model name: cpu MHz 2894.214
    ("amd-epyc7451-96c-8n", {"tsc_khz": 2894214, "tsc_source": "cpuinfo", "invariant_tsc": True,
                             "tsc_scaling": True, "microcode": "0x8001227"}),
    ("amd-opteron6134-32c-8n", {"tsc_khz": 2300000, "invariant_tsc": True, "tsc_scaling": False,
                                "microcode": None}),
    # Westmere's "vmx flags" line has no tsc_scaling; the i7-1370P's has it
    ("intel-l5640-24c-2n", {"tsc_khz": 2270000, "tsc_scaling": False, "microcode": "0x1f"}),
    ("intel-i7-1370p-hybrid", {"tsc_scaling": True, "invariant_tsc": True}),
    # no nonstop_tsc in the flags
    ("intel-x3950m2-96c-4n", {"invariant_tsc": False, "tsc_khz": 2660000}),
])
def test_host_migration_from_captured_cpuinfo(check_json, host_roots, name, expected):
    _, report = check_json(host_roots[name], "--for", "migration")
    jsonschema.validate(report, SCHEMA)
    migration = report["host"]["migration"]
    assert list(migration) == KEYS
    assert {k: migration[k] for k in expected} == expected
    assert migration["clocksource"] is None and migration["machine_types"] == []  # not in these dumps


def test_the_kernel_logs_calibration_and_the_package_database(check_json, host_roots, tmp_path):
    root = build_root("synthetic-intel-vtx", tmp_path)
    (root / "kvmtune-kernel-log").write_text("tsc: Detected 2095.074 MHz processor\n"
                                             "tsc: Refined TSC clocksource calibration: 2095.077 MHz\n")
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG)
    (root / "var/lib/dpkg/info/qemu-system-x86.list").write_text("/usr/bin/qemu-system-x86_64\n")
    caps = root / "var/cache/libvirt/qemu/capabilities"
    caps.mkdir(parents=True)
    (caps / "3c76bc4.xml").write_text("<machine type='kvm' name='pc-q35-7.2'/><machine type='kvm' name='pc-i440fx-7.2'/>")
    (root / "proc/sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-27-amd64\n")
    _, report = check_json(root, "--for", "migration")
    jsonschema.validate(report, SCHEMA)
    assert report["host"]["migration"] == {
        "tsc_khz": 2095077, "tsc_source": "kernel-log", "invariant_tsc": True, "tsc_scaling": True,
        "clocksource": "tsc", "microcode": None, "kernel": "6.1.0-27-amd64", "qemu": "7.2.0", "libvirt": "9.0.0",
        "machine_types": ["pc-i440fx-7.2", "pc-q35-7.2"]}
    # Plain check --json does not read libvirt's version (the package database is read only
    # with --for migration, --format nfd and snapshot); QEMU's comes from host.qemu.
    _, plain = check_json(root)
    assert plain["host"]["migration"]["libvirt"] is None and plain["host"]["migration"]["qemu"] == "7.2.0"


def test_dpkgs_database_is_read_once_and_only_when_asked(host_roots, tmp_path, monkeypatch):
    from kvmtune.checks import read_phase
    from kvmtune.host.door import Host

    root = build_root("synthetic-intel-vtx", tmp_path)
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG)
    reads = []
    real = Host.read_bytes
    monkeypatch.setattr(Host, "read_bytes", lambda self, rel, *a, **k: reads.append(rel) or real(self, rel, *a, **k))
    read_phase(Host(str(root)), [], [], host_json=False)
    assert "var/lib/dpkg/status" not in reads  # plain check
    # check --json reads it only where dpkg lists a QEMU package (host.qemu), as before
    read_phase(Host(str(root)), [], [], host_json=True)
    assert "var/lib/dpkg/status" not in reads
    (root / "var/lib/dpkg/info/qemu-system-x86.list").write_text("/usr/bin/qemu-system-x86_64\n")
    reads.clear()
    facts = read_phase(Host(str(root)), [], [], host_json=True, intents=("general", "migration"))
    assert reads.count("var/lib/dpkg/status") == 1
    assert facts.known("qemu").version == "1:7.2+dfsg-7+deb12u18+b3" and facts.known("packages").libvirt == "9.0.0"


# -- the clock check and the migration intent --------------------------------------------------

def test_a_host_without_invariant_tsc_is_not_ready_for_migration_only(check_json, host_roots):
    code, report = check_json(host_roots["intel-x3950m2-96c-4n"], "--for", "migration")
    checks = by_id(report)
    assert checks["clock"]["status"] == "fail" and "no invariant TSC" in checks["clock"]["detail"]
    assert "blocks migration" in checks["clock"]["detail"]
    assert "migration" not in report["ready_for"]
    _, plain = check_json(host_roots["intel-x3950m2-96c-4n"])
    assert by_id(plain)["clock"]["status"] == "warn"  # a generic guest is not blocked


def test_an_unstable_clocksource_blocks_migration(check_json, host_roots, tmp_path):
    root = build_root("synthetic-intel-vtx", tmp_path)
    code, report = check_json(root, "--for", "migration")
    assert by_id(report)["clock"]["status"] == "pass" and "migration" in report["ready_for"]
    (root / "kvmtune-kernel-log").write_text("tsc: Marking TSC unstable due to clocksource watchdog\n")
    (root / "sys/devices/system/clocksource/clocksource0/current_clocksource").write_text("hpet\n")
    code, report = check_json(root, "--for", "migration")
    clock = by_id(report)["clock"]
    assert clock["status"] == "fail" and "Marking TSC unstable" in clock["detail"]
    assert clock["data"]["unstable"] == ["tsc: Marking TSC unstable due to clocksource watchdog"]
    assert report["ready_for"] == ["general"] and code == 1


def test_no_dev_kvm_blocks_migration(check_json, host_roots):
    code, report = check_json(host_roots["synthetic-no-dev-kvm"], "--for", "migration")
    assert code == 1 and "migration" not in report["ready_for"]
    assert "kvm.device" in by_id(report)["ready"]["data"]["blocking"]


def test_migration_warns_without_blocking_on_a_measured_tsc_and_periodic_sync_off(check_json, tmp_path):
    root = build_root("synthetic-intel-vtx", tmp_path)
    # The synthetic Xeon has no tsc_known_freq: the kernel measured its TSC.
    code, report = check_json(root, "--for", "migration")
    tsc = by_id(report)["clock.tsc"]
    assert tsc["status"] == "warn" and "not known (no tsc_known_freq flag)" in tsc["detail"]
    assert "migration" in report["ready_for"] and code == 0
    assert "kvmclock_periodic_sync" not in tsc["detail"]
    (root / "sys/module/kvm/parameters/kvmclock_periodic_sync").write_text("N\n")
    _, report = check_json(root, "--for", "migration")
    assert "kvm.kvmclock_periodic_sync=0 without tsc=reliable" in by_id(report)["clock.tsc"]["detail"]
    assert "migration" in report["ready_for"]
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().strip() + " tsc=reliable\n")
    _, report = check_json(root, "--for", "migration")
    assert "kvmclock_periodic_sync" not in by_id(report)["clock.tsc"]["detail"]


def test_a_known_tsc_frequency_passes(check_json, tmp_path):
    from tests.fixtures.synthetic import INTEL_FLAGS, host, write_tree

    root = write_tree(str(tmp_path / "known"), host(flags=INTEL_FLAGS + " tsc_known_freq"))
    _, report = check_json(root, "--for", "migration")
    assert by_id(report)["clock.tsc"]["status"] == "pass"
    assert report["ready_for"] == ["general", "migration"]


def test_plain_check_does_not_run_the_migration_only_check(check_json, host_roots):
    _, report = check_json(host_roots["synthetic-intel-vtx"])
    assert "clock" in by_id(report) and "clock.tsc" not in by_id(report)


# -- live --------------------------------------------------------------------------------------

def _kernel_log_khz() -> int | None:
    """The kernel's own frequency line, read here straight from /dev/kmsg (not through kvmtune)."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    refined = detected = None
    try:
        while True:
            try:
                text = os.read(fd, 8192).decode("utf-8", "replace").partition(";")[2]
            except BlockingIOError:
                break
            except OSError:
                continue
            m = re.match(r"tsc: Refined TSC clocksource calibration: (\d+\.\d+) MHz", text)
            refined = float(m.group(1)) if m else refined
            m = re.match(r"tsc: Detected (\d+\.\d+) MHz processor", text)
            detected = float(m.group(1)) if m else detected
    finally:
        os.close(fd)
    mhz = refined or detected
    return None if mhz is None else round(mhz * 1000)


@pytest.mark.live
@live_kvm
def test_live_tsc_frequency_comes_from_kvm_and_agrees_with_the_kernel_log(run_cli):
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("the kernel log cannot be read here")
    logged = _kernel_log_khz()
    if logged is None:
        pytest.skip("the kernel log has no TSC frequency line (it may have wrapped)")
    code, out, err = run_cli("check", "--json")
    migration = json.loads(out)["host"]["migration"]
    assert migration["tsc_source"] == "kvm", err
    assert abs(migration["tsc_khz"] - logged) / logged <= 0.001, (migration["tsc_khz"], logged)


# -- what feeds host.migration beyond the files -----------------------------------------------

@pytest.mark.parametrize("msrs, expected", [
    ({0x48B: (1 << 57) | 0xFF}, True),  # allowed-1 half, bit 25: "use TSC scaling"
    ({0x48B: 1 << 25}, False),  # the same bit in the allowed-0 half says nothing of support
    ({0x10A: 1}, None),  # no VMX feature MSRs listed (AMD, or kvm_intel without nested)
])
def test_tsc_scaling_from_the_vmx_secondary_controls(msrs, expected):
    from kvmtune.probe.kvm_cpuid import KvmCpuid, vmx_tsc_scaling

    assert vmx_tsc_scaling(KvmCpuid((), msrs)) is expected


def test_kvms_answers_come_before_cpuinfos():
    from kvmtune.checks.clock import migration_facts
    from kvmtune.checks.read import KvmAnswers
    from kvmtune.probe.clock import ClockFacts
    from kvmtune.probe.kvm_ioctl import KvmProbe

    probe = KvmProbe()
    probe.tsc_khz = 2095081
    clock = ClockFacts("tsc", ("tsc",), True, False, 2095077, "refined", (), True, (), 2100000, False)
    facts = {"clock": clock, "kvm": KvmAnswers(probe, (), tsc_scaling=True)}
    out = migration_facts(facts.get)
    assert (out["tsc_khz"], out["tsc_source"], out["tsc_scaling"]) == (2095081, "kvm", True)
    probe.tsc_khz = None  # a kernel that refused KVM_GET_TSC_KHZ
    facts["kvm"] = KvmAnswers(probe, None)
    out = migration_facts(facts.get)
    assert (out["tsc_khz"], out["tsc_source"], out["tsc_scaling"]) == (2095077, "kernel-log", False)


def test_a_snapshot_keeps_the_clock_lines_and_the_package_database(run_cli, tmp_path):
    root = build_root("synthetic-intel-vtx", tmp_path)
    (root / "kvmtune-kernel-log").write_text("tsc: Refined TSC clocksource calibration: 2095.077 MHz\n")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(DPKG)
    code, _, err = run_cli("--root", str(root), "snapshot", str(tmp_path / "copy"))
    assert code == 0, err
    code, out, err = run_cli("--root", str(tmp_path / "copy"), "check", "--json", "--for", "migration")
    migration = json.loads(out)["host"]["migration"]
    assert (migration["tsc_khz"], migration["tsc_source"]) == (2095077, "kernel-log")
    assert (migration["qemu"], migration["libvirt"]) == ("7.2.0", "9.0.0")


@pytest.mark.live
@live_kvm
def test_a_live_snapshot_keeps_only_the_clock_lines_of_the_kernel_log(run_cli, tmp_path):
    if not os.access("/dev/kmsg", os.R_OK) or _kernel_log_khz() is None:
        pytest.skip("the kernel log cannot be read here, or has no TSC frequency line")
    code, _, err = run_cli("snapshot", str(tmp_path / "snap"))
    assert code == 0, err
    kept = (tmp_path / "snap" / "kvmtune-kernel-log").read_text().splitlines()
    assert kept and all(line.startswith(("tsc:", "clocksource:")) for line in kept)
    _, out, _ = run_cli("--root", str(tmp_path / "snap"), "check", "--json")
    migration = json.loads(out)["host"]["migration"]
    assert migration["tsc_source"] == "kernel-log" and migration["tsc_khz"] == _kernel_log_khz()


def _rpm_header(tags: dict[int, str]) -> bytes:
    """An rpm header blob as lib/header.c exports it: il, dl, then 16-byte entries, then data."""
    import struct

    index, store = b"", b""
    for tag, value in sorted(tags.items()):
        index += struct.pack(">iiii", tag, 6, len(store), 1)  # RPM_STRING_TYPE
        store += value.encode() + b"\0"
    return struct.pack(">ii", len(tags), len(store)) + index + store


def test_versions_from_rpms_sqlite_database(check_json, tmp_path):
    import sqlite3

    root = build_root("synthetic-intel-vtx", tmp_path)
    (root / "var/lib/rpm").mkdir(parents=True)
    db = sqlite3.connect(root / "var/lib/rpm/rpmdb.sqlite")
    db.execute("PRAGMA journal_mode=WAL")  # as rpm keeps it
    db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
    for name, version, release in (("bash", "5.1.8", "9.el9"), ("qemu-kvm-core", "8.2.0", "11.el9_4"),
                                   ("libvirt-daemon", "10.0.0", "6.el9_4"), ("qemu-kvm", "8.2.0", "11.el9_4")):
        db.execute("INSERT INTO Packages (blob) VALUES (?)",
                   (_rpm_header({1000: name, 1001: version, 1002: release, 1003: "17"}),))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    _, report = check_json(root, "--for", "migration")
    migration = report["host"]["migration"]
    assert (migration["qemu"], migration["libvirt"]) == ("8.2.0", "10.0.0")
    (root / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"SQLite format 3\0" + b"\xff" * 200)  # damaged
    _, report = check_json(root, "--for", "migration")
    assert (report["host"]["migration"]["qemu"], report["host"]["migration"]["libvirt"]) == (None, None)


def test_a_damaged_rpm_header_gives_what_it_holds():
    from kvmtune.probe.rpmdb import header_strings

    blob = _rpm_header({1000: "qemu-kvm", 1001: "8.2.0"})
    assert header_strings(blob) == {1000: "qemu-kvm", 1001: "8.2.0"}
    assert header_strings(blob[:20]) == {} and header_strings(b"\xff" * 8) == {} and header_strings(b"") == {}
