"""Verdicts that say what they know: not judged is not READY, a bench that measured nothing is
not a success, a fleet report counts a host once and names who holds it back."""

import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("selection", [["--skip", "kvm,memory"], ["--only", "ksm"], ["--skip", "kvm.device"]])
def test_leaving_out_the_deciding_checks_is_not_judged(selection, run_cli, host_roots):
    root = str(host_roots["synthetic-intel-vtx"])
    assert run_cli("--root", root, "check")[0] == 0  # the whole check finds it ready
    code, out, _ = run_cli("--root", root, "check", *selection)
    assert code == 1 and "NOT JUDGED" in out and "READY  " not in out.replace("NOT JUDGED", "")
    code, out, _ = run_cli("--root", root, "check", "--json", *selection)
    report = json.loads(out)
    assert code == 1 and report["ready"] is False and report["judged"] is False
    verdict = report["checks"][-1]
    assert verdict["id"] == "ready" and verdict["status"] == "unknown"
    assert verdict["detail"].startswith("not judged: kvm.device")


def test_a_selection_that_keeps_the_deciding_checks_is_judged(run_cli, host_roots):
    root = str(host_roots["synthetic-intel-vtx"])
    code, out, _ = run_cli("--root", root, "check", "--json", "--only", "kvm.device,ksm")
    report = json.loads(out)
    assert code == 0 and report["ready"] is True and report["judged"] is True


def _result(run_cli, root, dest, hostname=None):
    _, out, _ = run_cli("--root", str(root), "check", "--json")
    obj = json.loads(out)
    if hostname:
        obj["host"]["hostname"] = hostname
    dest.write_text(json.dumps(obj))
    return obj


def test_report_counts_a_host_once_keeping_its_newest_result(run_cli, host_roots, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    _result(run_cli, host_roots["synthetic-no-dev-kvm"], results / "a-old.json", "hv01")
    _result(run_cli, host_roots["synthetic-intel-vtx"], results / "b-new.json", "hv01")
    _result(run_cli, host_roots["synthetic-intel-vtx"], results / "c.json", "hv02")
    os.utime(results / "a-old.json", (1_000_000_000, 1_000_000_000))
    os.utime(results / "b-new.json", (2_000_000_000, 2_000_000_000))
    code, out, _ = run_cli("report", str(results), "--json")
    summary = json.loads(out)
    assert summary["counts"]["hosts"] == 2 and [h["name"] for h in summary["hosts"]] == ["hv01", "hv02"]
    assert summary["hosts"][0]["ready"] is True and code == 0  # the newer result of hv01 counts
    assert summary["duplicates"] == [{"host": "hv01", "kind": "check", "kept": str(results / "b-new.json"),
                                      "left_out": [str(results / "a-old.json")]}]
    # The newest wins whatever the file names say.
    os.utime(results / "a-old.json", (3_000_000_000, 3_000_000_000))
    code, out, _ = run_cli("report", str(results))
    assert code == 1 and "hv01: 2 check results; the newest counts" in out and "b-new.json" in out
    assert "\n  hv01: kvm.device fail" in out  # the older result, now the newest, is the one judged


def test_report_names_the_hosts_that_hold_the_cpu_baseline_back(run_cli, host_roots, tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    _result(run_cli, host_roots["intel-gold6230-80c-4n-snc"], results / "gold.json", "hv-gold")
    _result(run_cli, host_roots["intel-silver4108-32c-2n"], results / "silver.json", "hv-silver")
    _, out, _ = run_cli("report", str(results))
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "holds it back from Cascadelake-Server" in line)
    assert lines[at + 1].strip() == "hv-silver: lacks avx512vnni"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_bench_that_may_not_open_dev_kvm_is_refused(tmp_path):
    if not os.path.exists("/dev/kvm") or os.stat("/dev/kvm").st_mode & 0o006:
        pytest.skip("/dev/kvm is missing here or open to everyone")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": HERE, "HOME": "/tmp"}
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "kvmtune",
           "bench", "--quick", "--only", "exits"]
    proc = subprocess.run(cmd + ["--json"], capture_output=True, text=True, env=env, timeout=120, cwd="/tmp")
    assert proc.returncode == 4, proc.stderr
    assert json.loads(proc.stdout)["rc"] == 4 and "/dev/kvm" in proc.stderr and "root" in proc.stderr
    # The host-side walk alone needs no KVM, and still runs.
    proc = subprocess.run(cmd[:-2] + ["--only", "native", "--json"], capture_output=True, text=True, env=env,
                          timeout=300, cwd="/tmp")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", ["x.zip", "x.tar.bz2", "x.gz", "x"])
def test_snapshot_refuses_a_tar_name_it_cannot_honour(name, run_cli, host_roots, tmp_path):
    code, _, err = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "snapshot", "--tar", str(tmp_path / name))
    assert code == 2 and ".tar.gz" in err
    assert os.listdir(tmp_path) == []  # refused before anything was captured or written


@pytest.mark.parametrize("name, magic", [("x.tar", None), ("x.tgz", b"\x1f\x8b"), ("x.tar.xz", b"\xfd7zXZ")])
def test_snapshot_writes_what_the_name_promises(name, magic, run_cli, host_roots, tmp_path):
    import tarfile

    code, _, err = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "snapshot", "--tar", str(tmp_path / name))
    assert code == 0, err
    data = (tmp_path / name).read_bytes()
    assert data.startswith(magic) if magic else data[257:262] == b"ustar"
    with tarfile.open(tmp_path / name) as tar:
        assert "kvmtune-snapshot.json" in tar.getnames()
