"""Advice that works when pasted: only a CPU model the host's QEMU has is recommended."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kvmtune.cpumodels import table
from kvmtune.cpumodels.baseline import baseline
from kvmtune.cpumodels.qemu import from_version, in_releases, releases
from kvmtune.probe.qemu import parse_cpu_help, parse_dpkg_status, upstream_series
from tests.conftest import build_root, live_kvm

REPO = Path(__file__).resolve().parent.parent
QEMU = shutil.which("qemu-system-x86_64")


def _generator():
    spec = importlib.util.spec_from_file_location("make_qemu_cpu_table", REPO / "scripts" / "make_qemu_cpu_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_qemu(root: Path, version: str | None, package: str = "qemu-system-x86") -> Path:
    """Give a captured tree a QEMU binary and, if ``version``, dpkg's record of its package."""
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/bin/qemu-system-x86_64").write_text("")
    if version:
        (root / "var/lib/dpkg/info").mkdir(parents=True, exist_ok=True)
        (root / f"var/lib/dpkg/info/{package}.list").write_text("/.\n/usr\n/usr/bin\n/usr/bin/qemu-system-x86_64\n")
        (root / "var/lib/dpkg/status").write_text(
            "Package: qemu-utils\nStatus: install ok installed\nVersion: 1:9.9\n\n"
            f"Package: {package}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {version}\n"
            "Description: QEMU full system emulation binaries (x86)\n\n")
    return root


def models_json(run_cli, root):
    code, out, err = run_cli("--root", str(root), "cpu-models", "--json")
    assert code == 0, err
    data = json.loads(out)
    return data, {m["name"]: m for m in data["models"]}


# The package database, read as text.

@pytest.mark.parametrize("version, series", [("1:7.2+dfsg-7+deb12u18+b3", "7.2"), ("1:8.2.2+ds-0ubuntu1.4", "8.2"),
                                             ("6.2.0", "6.2"), ("1:10.1.0~rc1+ds-1", "10.1"), ("garbage", None)])
def test_upstream_series(version, series):
    assert upstream_series(version) == series


def test_dpkg_status_needs_the_package_installed():
    removed = "Package: qemu-system-x86\nStatus: deinstall ok config-files\nVersion: 1:6.2+dfsg-2\n"
    kept = "Package: qemu-kvm\nStatus: install ok installed\nVersion: 1:4.2-3ubuntu6\n"
    assert parse_dpkg_status(removed) is None
    assert parse_dpkg_status(removed + "\n" + kept) == ("qemu-kvm", "1:4.2-3ubuntu6")


def test_cpu_help_lists_models_not_classes():
    text = ("Available CPUs:\nx86 486                   (alias configured by machine type)\n"
            "x86 Skylake-Client-IBRS   (alias of Skylake-Client-v2)\nx86 host  processor with all supported host "
            "features\nx86 max  Enables all features\n\nRecognized CPUID flags:\n  3dnow 3dnowext\n")
    assert parse_cpu_help(text) == {"486", "Skylake-Client-IBRS"}


# The generated table.

def test_table_records_where_each_release_came_from():
    rows = releases()
    assert [r["series"] for r in rows] == sorted({r["series"] for r in rows}, key=lambda s: tuple(map(int, s.split("."))))
    for r in rows:
        assert re.fullmatch(r"[0-9a-f]{40}", r["commit"]) and re.fullmatch(r"[0-9a-f]{40}", r["cpu_c_blob"])
        assert r["release"].startswith(r["series"] + ".") and "qemu64" in r["models"]
    libvirt = {m["name"] for m in table.models()}
    # libvirt's map names models no QEMU release has: those must never come out of the table.
    assert {"pentiumpro", "cpu64-rhel5", "cpu64-rhel6"} <= libvirt - {n for r in rows for n in r["models"]}


def test_generator_reads_models_versions_and_aliases(tmp_path):
    gen = _generator()
    (tmp_path / "target/i386").mkdir(parents=True)
    (tmp_path / "VERSION").write_text("7.2.0\n")
    (tmp_path / "target/i386/cpu.c").write_text("""
static int unrelated[] = { 1 };
static const X86CPUDefinition builtin_x86_defs[] = {
    { .name = "qemu64", .model_id = "QEMU Virtual CPU {not a brace}" },
    /* { .name = "commented-out" }, */
    {
        .name = "Widget",
        .versions = (X86CPUVersionDefinition[]) {
            { .version = 1 },
            { .version = 2, .alias = "Widget-IBRS",
              .props = (PropValue[]) { { "spec-ctrl", "on" }, { /* end */ } } },
            { /* end */ }
        }
    },
};
""")
    rel = gen.release_entry("example/qemu", str(tmp_path))
    assert rel["release"] == "7.2.0" and rel["series"] == "7.2" and len(rel["cpu_c_blob"]) == 40
    assert set(rel["models"]) == {"qemu64", "qemu64-v1", "Widget", "Widget-v1", "Widget-v2", "Widget-IBRS"}


# An older QEMU's table refuses a newer model.

def test_an_older_qemu_refuses_a_newer_model():
    old, new = from_version(True, "6.2"), from_version(True, "9.2")
    assert in_releases("SapphireRapids")  # some QEMU has it
    assert old.has("SapphireRapids") is False and new.has("SapphireRapids") is True
    # 7.2 has no table of its own: what 6.2 and 8.1 both have is there, what neither has is not,
    # and a model only one of them has (Icelake-Client, dropped in 7.1) is not known.
    between = from_version(True, "7.2")
    assert between.has("Skylake-Server") is True and between.has("SierraForest") is False
    assert between.has("Icelake-Client") is None


def test_cpu_models_recommends_only_what_this_qemu_has(run_cli, tmp_path):
    root = with_qemu(build_root("amd-epyc7451-96c-8n", tmp_path), "1:6.2+dfsg-2ubuntu6.22")
    data, m = models_json(run_cli, root)
    assert data["qemu"]["series"] == "6.2" and data["qemu"]["models_known"]
    assert m["EPYC-v4"]["status"] == "usable" and m["EPYC-v4"]["in_qemu"] is False
    rec = data["recommended"]
    assert rec["in_qemu"] is True and rec["model"] in next(r for r in releases() if r["series"] == "6.2")["models"]
    assert rec["qemu"].startswith(f"-cpu {rec['model']}") and data["best"]["AMD"] == rec["model"]
    assert data["next"]["model"] == "EPYC-Rome" and data["next"]["in_qemu"] is True


def test_a_newer_qemu_gets_the_newer_model(run_cli, tmp_path):
    root = with_qemu(build_root("amd-epyc7451-96c-8n", tmp_path), "1:9.2.1+ds-1")
    data, m = models_json(run_cli, root)
    assert m["EPYC-v4"]["in_qemu"] is True and data["recommended"]["model"] == "EPYC-v4"


def test_without_qemu_each_model_says_where_it_comes_from(run_cli, host_roots):
    data, m = models_json(run_cli, host_roots["amd-epyc7451-96c-8n"])
    assert data["qemu"]["installed"] is False and not data["qemu"]["models_known"]
    assert all(v["in_qemu"] is None for v in m.values())
    assert m["pentiumpro"]["qemu_releases"] == [] and m["EPYC"]["qemu_releases"]
    # libvirt names a newer EPYC than any tabulated QEMU has: that one is not advice.
    assert data["recommended"]["qemu_releases"]
    newer = [n for n, v in m.items() if v["status"] == "usable" and v["vendor"] == "AMD" and not v["qemu_releases"]]
    assert newer and data["recommended"]["model"] not in newer


def test_text_names_the_source_of_each_model(run_cli, host_roots):
    code, out, _ = run_cli("--root", str(host_roots["amd-epyc7451-96c-8n"]), "cpu-models")
    assert code == 0 and "\nQEMU: no QEMU installed\n" in out
    assert re.search(r"^\S+\s+pentiumpro\s+libvirt only\s", out, re.M)


# Fleets: every host's QEMU must have the baseline.

def test_baseline_holds_to_the_oldest_qemu(check_json, tmp_path):
    hosts = []
    for name, version in (("a", "1:6.2+dfsg-2ubuntu6"), ("b", "1:9.2.1+ds-1")):
        root = with_qemu(build_root("amd-epyc7451-96c-8n", tmp_path / name), version)
        hosts.append((name, check_json(root)[1]["host"]))
    assert hosts[0][1]["qemu"]["series"] == "6.2"
    out = baseline(hosts)
    assert out["baseline"] in next(r for r in releases() if r["series"] == "6.2")["models"]
    assert out["baseline"] != "EPYC-v4" and out["warnings"] == []
    assert baseline(hosts[1:])["baseline"] == "EPYC-v4"
    unsaid = [(n, {k: v for k, v in h.items() if k != "qemu"}) for n, h in hosts]
    assert "not one proven there" in baseline(unsaid)["warnings"][0]


# Pasted advice runs: the recommended -cpu string, with enforce, in this machine's QEMU under KVM.

def start_qemu(cpu: str) -> subprocess.CompletedProcess:
    """Create the machine and its vCPU (where enforce is judged), stopped (-S), then quit."""
    qmp = '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'
    return subprocess.run([QEMU, "-machine", "pc", "-accel", "kvm", "-cpu", cpu, "-nodefaults", "-S",
                           "-display", "none", "-qmp", "stdio"], input=qmp, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.live
@pytest.mark.skipif(QEMU is None, reason="QEMU is not installed (qemu-system-x86)")
@live_kvm
def test_recommended_cpu_starts_in_qemu_with_enforce(run_cli):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable by this user")
    code, out, err = run_cli("cpu-models", "--json")
    data = json.loads(out)
    assert data["qemu"]["models_known"] and data["recommended"]["in_qemu"] is True
    cpu = data["recommended"]["qemu"].removeprefix("-cpu ") + ",enforce"
    refused = start_qemu("pentiumpro,enforce")  # the harness can tell a refusal
    assert refused.returncode != 0 and "pentiumpro" in refused.stderr
    proc = start_qemu(cpu)
    assert proc.returncode == 0, f"-cpu {cpu}: {proc.stderr}"
    assert "warning" not in proc.stderr


# Which QEMU, without running it on check's path; cpu-models asks it at most once.

def test_check_never_runs_qemu(run_cli, monkeypatch, tmp_path):
    from kvmtune.host.door import Host

    def refuse(self, rel, args, timeout=20.0):
        raise AssertionError(f"check ran {rel}")

    monkeypatch.setattr(Host, "run_program", refuse)
    root = with_qemu(build_root("amd-epyc7451-96c-8n", tmp_path), "1:7.2+dfsg-7+deb12u18+b3")
    code, out, err = run_cli("--root", str(root), "check", "--json")
    assert json.loads(out)["host"]["qemu"]["series"] == "7.2", err
    if os.path.exists("/var/lib/dpkg/status"):
        code, out, err = run_cli("check", "--json")
        assert "qemu" in json.loads(out)["host"], err


@pytest.mark.skipif(QEMU is None, reason="QEMU is not installed (qemu-system-x86)")
def test_cpu_models_asks_qemu_once_and_only_when_no_table_fits(run_cli, monkeypatch):
    from kvmtune.host.door import Host
    from kvmtune.probe.qemu import read_qemu

    install = read_qemu(Host("/"))
    if install.series is None:
        pytest.skip("dpkg does not say which QEMU is installed here")
    calls = []
    real = Host.run_program
    monkeypatch.setattr(Host, "run_program", lambda self, *a, **k: calls.append(a) or real(self, *a, **k))
    code, out, err = run_cli("cpu-models", "--json", "--source", "cpuinfo")
    data = json.loads(out)
    tabulated = any(r["series"] == install.series for r in releases())
    assert len(calls) == (0 if tabulated else 1), calls
    assert data["qemu"]["models_known"] and data["recommended"]["in_qemu"] is True
