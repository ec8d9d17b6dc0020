"""Named CPU models: the shipped table, verdicts on real machines, baselines, and KVM vs QEMU here."""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvmtune.cpumodels import table
from kvmtune.cpumodels.baseline import baseline
from kvmtune.cpumodels.verdict import CpuinfoSource, evaluate, model_family
from tests.conftest import live_kvm

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).parent / "fixtures" / "reference"  # see its README.md
needs_reference = pytest.mark.skipif(not (REFERENCE / "cpu-models.json").exists(),
                                     reason="tests/fixtures/reference is missing")


def models_json(run_cli, root=None, *extra):
    args = (["--root", str(root)] if root else []) + ["cpu-models", "--json", *extra]
    code, out, err = run_cli(*args)
    assert code == 0, err
    data = json.loads(out)
    return data, {m["name"]: m for m in data["models"]}


# The shipped table.

def test_table_counts_and_removed_features():
    models = {m["name"]: m for m in table.models()}
    assert len(models) == 176
    assert len(table.features()) == 400
    # Cascadelake-Server removes mpx from what it inherits; -v2 inherits Cascadelake-Server.
    assert "mpx" not in models["Cascadelake-Server"]["features"]
    assert "mpx" not in table.required(models["Cascadelake-Server"])
    assert models["Haswell-v2"]["inherits"] == "Haswell-noTSX"
    assert set(models["Haswell-v2"]["features"]) == set(models["Haswell-noTSX"]["features"])
    assert models["EPYC-Genoa"]["vendor"] == "AMD" and models["qemu64"]["vendor"] is None


@needs_reference
def test_table_matches_the_reference_derivation():
    ref = json.loads((REFERENCE / "cpu-models.json").read_text())["models"]
    ours = {m["name"]: m for m in table.models()}
    assert set(ours) == set(ref)
    for name, model in ours.items():
        assert set(model["features"]) == set(ref[name]["features"]), name
        assert set(model["features"]).isdisjoint(ref[name]["removed_features"]), name
        assert model["vendor"] == ref[name]["vendor"], name


@needs_reference
def test_script_regenerates_the_shipped_table(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_cpu_table.py"),
                           str(REFERENCE / "libvirt-cpu-map"), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("cpu_features.json", "cpu_models.json"):
        assert filecmp.cmp(tmp_path / name, REPO / "kvmtune" / "data" / name, shallow=False), name


# Real machines (cpuinfo decides: a snapshot cannot ask KVM).

def test_gold_6230_runs_cascadelake_server(run_cli, host_roots):
    data, m = models_json(run_cli, host_roots["intel-gold6230-80c-4n-snc"])
    assert data["source"] == "cpuinfo"
    assert m["Cascadelake-Server"]["status"] == "usable"
    assert model_family(data["best"]["Intel"]) == "Cascadelake-Server"
    assert data["next"]["model"] == "Icelake-Client" and "avx512vbmi" in data["next"]["missing"]
    assert data["recommended"]["qemu"].startswith(f"-cpu {data['best']['Intel']}")


def test_silver_4108_runs_skylake_server_ibrs_not_cascadelake(run_cli, host_roots):
    data, m = models_json(run_cli, host_roots["intel-silver4108-32c-2n"])
    assert m["Skylake-Server-IBRS"]["status"] == "usable"
    assert m["Cascadelake-Server"]["status"] == "not-usable"
    assert m["Cascadelake-Server"]["missing"] == ["avx512vnni"]
    assert data["next"] == {"model": "Cascadelake-Server", "missing": ["avx512vnni"], "undecided": [], "in_qemu": None}


def test_epyc_7451_runs_an_epyc_model(run_cli, host_roots):
    data, m = models_json(run_cli, host_roots["amd-epyc7451-96c-8n"])
    assert m["EPYC"]["status"] == "usable"
    assert model_family(data["best"]["AMD"]) == "EPYC"
    assert data["next"]["model"] == "EPYC-Rome"


@pytest.mark.parametrize("name", ["amd-opteron8347-16c-4n", "amd-opteron6134-32c-8n"])
def test_old_opterons_run_opteron_g3(name, run_cli, host_roots):
    data, m = models_json(run_cli, host_roots[name])
    assert m["Opteron_G3"]["status"] == "usable"
    assert m["Opteron_G4"]["status"] == "not-usable"
    assert model_family(data["best"]["AMD"]) == "Opteron_G3"


def test_undecidable_features_are_never_counted_present():
    every_flag = {f for feat in table.features().values() for alt in feat.get("flags", []) for f in alt}
    source = CpuinfoSource(every_flag, bugs=[])
    spr = next(v for v in evaluate(source) if v.name == "SapphireRapids")
    assert spr.status == "undecided" and not spr.missing and "amx-fp16" not in spr.undecided
    assert spr.undecided  # e.g. avx-vnni-int8, fsrs: cpuinfo cannot tell
    assumed = next(v for v in evaluate(source, assume_undecided=True) if v.name == "SapphireRapids")
    assert assumed.status == "usable"
    no_bugs_line = next(v for v in evaluate(CpuinfoSource(every_flag, bugs=None)) if v.name == "Cascadelake-Server-v2")
    assert "mds-no" in no_bugs_line.undecided  # no bugs line: the kernel cannot tell us


# Baselines across sets of machines.

def results(check_json, host_roots, names):
    return [(n, check_json(host_roots[n])[1]["host"]) for n in names]


def test_baseline_intel_pair(check_json, host_roots):
    out = baseline(results(check_json, host_roots, ["intel-gold6230-80c-4n-snc", "intel-silver4108-32c-2n"]))
    assert model_family(out["baseline"]) == "Skylake-Server"
    assert out["held_back"]["model"] == "Cascadelake-Server"
    assert out["held_back"]["hosts"] == [{"name": "intel-silver4108-32c-2n", "missing": ["avx512vnni"], "undecided": []}]
    assert out["warnings"] == []
    assert out["libvirt"].startswith("<cpu mode='custom' match='exact'")


def test_baseline_old_opterons(check_json, host_roots):
    out = baseline(results(check_json, host_roots, ["amd-opteron8347-16c-4n", "amd-opteron6134-32c-8n"]))
    assert model_family(out["baseline"]) == "Opteron_G3"


def test_baseline_mixed_vendors_warns(check_json, host_roots):
    out = baseline(results(check_json, host_roots, ["intel-gold6230-80c-4n-snc", "amd-epyc7451-96c-8n"]))
    assert out["warnings"] and "mixed CPU vendors" in out["warnings"][0]
    assert next(m for m in table.models() if m["name"] == out["baseline"])["vendor"] is None


def test_cpu_baseline_command_and_fleet_report(run_cli, host_roots, tmp_path):
    for name in ("intel-gold6230-80c-4n-snc", "intel-silver4108-32c-2n"):
        code, out, _ = run_cli("--root", str(host_roots[name]), "check", "--json")
        (tmp_path / f"{name}.json").write_text(out)
    code, out, err = run_cli("cpu-baseline", str(tmp_path), "--json")
    data = json.loads(out)
    assert code == 0, err
    assert model_family(data["baseline"]) == "Skylake-Server" and data["sources"] == {"kvm": 0, "cpuinfo": 2}
    code, out, _ = run_cli("report", str(tmp_path), "--json")
    assert json.loads(out)["cpu_baseline"]["baseline"] == data["baseline"]


# The live machine: KVM's answer is the truth, and it must agree with QEMU's.

@live_kvm
def test_kvm_verdicts_agree_with_qemu_on_every_model(run_cli):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable by this user")
    expansion = REFERENCE / "qemu-cpu-model-expansion.json"
    if not expansion.exists():
        pytest.skip("tests/fixtures/reference is missing")
    data, ours = models_json(run_cli)
    assert data["source"] == "kvm"
    qemu = json.loads(expansion.read_text())["models"]
    disagree = {name: (ours[name]["missing"], q["unavailable_here"]) for name, q in qemu.items()
                if name in ours and (ours[name]["status"] == "usable") != (not q["unavailable_here"])}
    assert len([n for n in qemu if n in ours]) == 129
    assert disagree == {}


@live_kvm
def test_cpuinfo_is_only_the_fallback_here(run_cli):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable by this user")
    _, by_kvm = models_json(run_cli)
    _, by_flags = models_json(run_cli, None, "--source", "cpuinfo")
    differ = [n for n in by_kvm if by_kvm[n]["status"] != by_flags[n]["status"]]
    if not ("pni" in by_kvm["qemu64"]["missing"] and by_flags["qemu64"]["status"] == "usable"):
        pytest.skip("this host's KVM offers guests what its CPU flags show")
    # This machine's flags show SSE3/SSSE3/SSE4/AVX, but its KVM does not offer them to guests:
    # judging by flags would promise models QEMU refuses to start.
    # How many models differ depends on what this machine's KVM offers today (36 to 40 seen);
    # the direction does not: KVM offers less than the flags show, never more.
    assert differ
    assert all((by_flags[n]["status"], by_kvm[n]["status"]) == ("usable", "not-usable") for n in differ), differ
    assert by_kvm["qemu64"]["status"] == "not-usable"


@live_kvm
def test_check_json_carries_kvm_features(check_json):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable by this user")
    _, report = check_json("/")
    features = report["host"]["cpu"]["kvm_features"]
    assert "fpu" in features and features == sorted(features)


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU is not installed (qemu-system-x86)")
@live_kvm
def test_qemu_agrees_live(run_cli):
    qmp = ('{"execute":"qmp_capabilities"}\n{"execute":"query-cpu-definitions"}\n{"execute":"quit"}\n')
    proc = subprocess.run(["qemu-system-x86_64", "-machine", "none", "-accel", "kvm", "-nodefaults",
                           "-nographic", "-qmp", "stdio"], input=qmp, capture_output=True, text=True, timeout=60)
    replies = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    defs = next(r["return"] for r in replies if isinstance(r.get("return"), list))
    _, ours = models_json(run_cli)
    for d in defs:
        if d["name"] in ours:
            assert (ours[d["name"]]["status"] == "usable") == (not d.get("unavailable-features")), d["name"]


def test_cpu_baseline_never_prints_a_result_s_control_characters(run_cli, host_roots, tmp_path):
    for i, name in enumerate(("intel-gold6230-80c-4n-snc", "intel-silver4108-32c-2n")):
        code, out, _ = run_cli("--root", str(host_roots[name]), "check", "--json")
        result = json.loads(out)
        result["host"]["hostname"] = f"hv{i}\x1b]0;owned\x07\x1b[2J"
        result["host"]["cpu"]["flags"] = result["host"]["cpu"]["flags"] + ["\x1b[31mx\u202e"]
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
    (tmp_path / "junk\x1b[5m.json").write_text("[")
    code, out, err = run_cli("cpu-baseline", str(tmp_path))
    assert "unreadable: " in out and "junk\\x1b[5m.json" in out
    assert all(c.isprintable() or c == "\n" for c in out + err), repr(out)
