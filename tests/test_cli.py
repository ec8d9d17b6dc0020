"""The command line: exit codes, output channels, the fast path, errors without tracebacks."""

import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kvmtune.checks import run_checks
from kvmtune.checks.facts import Facts
from kvmtune.commands.check import CheckOptions
from kvmtune.entry import fast_options
from kvmtune.host import Host
from kvmtune.render.check_text import render_check_text

ARGV_VARIANTS = [
    ["check"],
    ["check", "--json"],
    ["check", "-q", "--strict"],
    ["check", "--only", "kvm,cpu", "--only", "ksm", "--skip=iommu"],
    ["check", "--as-user", "libvirt-qemu", "--root", "/tmp"],
    ["--root", "/tmp", "check", "--format", "json", "-o", "/tmp/x.json"],
    ["check", "--quiet", "--format=text"],
]


ARGV_VARIANTS += [
    ["apply", "dense"],
    ["apply", "/etc/p.yaml", "--check", "--diff", "--json", "--no-persist", "--force", "--keep-partial", "--wait"],
    ["--root", "/tmp", "apply", "--json", "latency"],
    ["apply", "x.yaml", "--root=/tmp"],
    ["plan", "dense", "--diff", "--no-persist"],
    ["plan", "--json", "kvm-host", "--force"],
    ["verify", "dense", "--json", "--force"],
    ["verify", "dense", "--no-persist", "--diff"],
    ["rollback"],
    ["rollback", "--check", "--json", "--wait", "--diff"],
    ["cpu-models"],
    ["cpu-models", "--json", "--assume-undecided", "--source", "cpuinfo", "--root", "/tmp"],
    ["report", "/tmp/a", "/tmp/b", "--json"],
    ["cpu-baseline", "--json", "/tmp/a", "--assume-undecided", "/tmp/c"],
]
RUNNER_OF = {"check": "kvmtune.commands.check.run_check", "apply": "kvmtune.commands.apply.run_apply",
             "plan": "kvmtune.commands.apply.run_apply", "verify": "kvmtune.commands.apply.run_verify",
             "rollback": "kvmtune.commands.apply.run_rollback", "cpu-models": "kvmtune.commands.cpu.run_cpu_models",
             "report": "kvmtune.commands.report.run_report", "cpu-baseline": "kvmtune.commands.cpu.run_cpu_baseline"}


@pytest.mark.parametrize("argv", ARGV_VARIANTS)
def test_fast_path_parses_like_typer(argv, monkeypatch):
    """The fast path must mean exactly what the typer definition means."""
    seen = []
    for target in set(RUNNER_OF.values()):
        monkeypatch.setattr(target, lambda opts: seen.append(opts) or 0)
    from kvmtune.cli import app

    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    command, opts = fast_options(argv)
    assert opts == seen[0]


@pytest.mark.parametrize("argv", [["check", "--help"], ["check", "--bogus"], ["check", "--only"],
                                  ["apply"], [], ["check", "--root", "--json"], ["apply", "a", "b"],
                                  ["apply", "--help"], ["profiles"], ["rollback", "extra"],
                                  ["plan", "x", "--keep-partial"], ["report"], ["cpu-baseline", "--json"],
                                  ["report", "a", "--assume-undecided"]])
def test_fast_path_defers_anything_unusual(argv):
    assert fast_options(argv) is None


def test_help_lists_the_options(run_cli):
    code, out, _ = run_cli("check", "--help")
    assert code == 0
    for option in ("--json", "--strict", "--only", "--skip", "--as-user", "--root", "--quiet"):
        assert option in out


@pytest.mark.parametrize("argv, message", [
    (["check", "--bogus"], "No such option"),
    (["check", "--only", "kvm.nope"], "unknown check or area 'kvm.nope'"),
    (["--root", "/does/not/exist", "check"], "is not a directory"),
    (["check", "--format", "yaml"], "--format"),
])
def test_bad_usage_exits_2_without_traceback(argv, message, run_cli):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert message in out + err
    assert "Traceback" not in out + err


def test_unknown_as_user_is_bad_input(host_roots, run_cli):
    # On a snapshot kvm.access is skipped, so use the live host only if it has /dev/kvm.
    if not os.path.exists("/dev/kvm"):
        pytest.skip("this machine has no /dev/kvm")
    code, _, err = run_cli("check", "--only", "kvm.access", "--as-user", "no-such-user-xyz")
    assert code == 2
    assert "no user named 'no-such-user-xyz'" in err


def test_internal_error_is_exit_3_and_debug_shows_traceback(host_roots, run_cli, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr("kvmtune.checks.run_checks", boom)
    root = str(host_roots["synthetic-intel-vtx"])
    code, out, err = run_cli("--root", root, "check")
    assert code == 3
    assert "internal error: RuntimeError: probe exploded" in err and "Traceback" not in err
    monkeypatch.setenv("KVMTUNE_DEBUG", "1")
    with pytest.raises(RuntimeError):
        run_cli("--root", root, "check")


def test_quiet_prints_only_what_does_not_pass(host_roots, run_cli):
    code, out, _ = run_cli("--root", str(host_roots["synthetic-no-dev-kvm"]), "check", "-q")
    assert code == 1
    assert "PASS" not in out
    assert "FAIL    kvm.device" in out
    assert "NOT READY" in out


def test_only_and_skip_by_area_and_id(host_roots, check_json):
    root = host_roots["synthetic-intel-vtx"]
    _, report = check_json(root, "--only", "kvm", "--skip", "kvm.modules")
    assert [c["id"] for c in report["checks"]] == ["kvm.device", "kvm.access", "kvm.functional", "ready"]


def test_plain_output_has_no_escape_codes_and_host_markup_is_inert(host_roots, run_cli):
    _, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check")
    assert "\x1b[" not in out
    facts = Facts(Host(str(host_roots["synthetic-intel-vtx"])))
    facts.__dict__["cpu"] = facts.cpu._replace(model_name="[bold red]Evil[/bold red] CPU")
    buf = io.StringIO()
    render_check_text(run_checks(facts), stream=buf, colour=True)
    text = buf.getvalue()
    assert "[bold red]Evil[/bold red] CPU" in text  # printed literally, not as markup
    assert "\x1b[" in text  # colour was on


def test_end_to_end_subprocess(host_roots):
    root = str(host_roots["synthetic-ksm-running"])
    proc = subprocess.run([sys.executable, "-m", "kvmtune", "--root", root, "check", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["host"]["ksm"]["run"] == 1


def test_check_options_equality_is_by_value():
    assert CheckOptions(only=["kvm"]) == CheckOptions(only=["kvm"])
    assert CheckOptions(only=["kvm"]) != CheckOptions(only=["cpu"])


def test_output_is_written_atomically_and_stdout_stays_empty(host_roots, run_cli, tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    code, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", "--json",
                           "-o", str(target))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["ready"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left


def test_output_to_a_missing_directory_is_an_error(host_roots, run_cli, tmp_path):
    code, _, err = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check",
                           "-o", str(tmp_path / "no" / "such" / "dir.txt"))
    assert code == 2 and "--output" in err and "Traceback" not in err
