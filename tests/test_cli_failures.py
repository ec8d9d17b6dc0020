"""Failures said one way: ``kvmtune: error:`` on stderr (never typer's box), and with --json,
exactly one JSON object on stdout whatever the exit code (Ansible parses it)."""

import json
import os
import subprocess
import sys

import pytest

from kvmtune.cli_spec import COMMANDS
from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.failure import failure_object

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Bad input of each command's own kind, beyond the unknown option and the bad --root every
# command gets below. A command that gains --json must be added here (the test says so).
BAD_INPUT = {
    "check": ["--only", "nosuch"],
    "apply": [os.path.join(HERE, "examples/plain-command.yml")],
    "plan": ["nosuch-profile"],
    "verify": ["nosuch-profile"],
    "rollback": ["--check", "--wait", "--diff", "extra-word"],
    "snapshot": ["/etc"],
    "bench": ["--size", "garbage"],
    "guests": ["--format", "yaml"],
    "partition": ["--isolated", "garbage"],
    "profiles": ["extra-word"],
    "report": ["/does/not/exist"],
    "cpu-models": ["--source", "qemu"],
    "cpu-baseline": ["/does/not/exist"],
    "devices": ["not-an-address"],
    "migration": ["/tmp", "--guest", "Cascadelake-Server-v5,64G"],
    "watch": ["--install", "--interval", "garbage"],
}


def _json_spellings(cmd):
    """Each way the command's declaration offers to ask for JSON."""
    for opt in cmd.options:
        if opt.kind == "flag" and (opt.field == "json" or opt.value == "json"):
            yield [opt.names[-1]]
        elif opt.field == "format" and opt.choices and "json" in opt.choices:
            yield [opt.names[-1], "json"]


def _bad_root(cmd):
    if cmd.effect in ("reads", "changes", "captures", "measures"):
        return ["--root", "/does/not/exist"]
    return ["--root", "/tmp"]  # a command that reads no host refuses --root


def _cases():
    for cmd in COMMANDS.values():
        for spelling in _json_spellings(cmd):
            words = ["dense"] if cmd.positional and cmd.positional[0] == "profile" else []
            yield cmd.name, [cmd.name, *spelling, *BAD_INPUT.get(cmd.name, ["--missing-entry"])]
            yield cmd.name, [cmd.name, *words, *spelling, "--no-such-option"]
            yield cmd.name, [*_bad_root(cmd), cmd.name, *words, *spelling]


def assert_one_failure_object(code, out, err):
    assert code in (2, 4, 5), (code, out, err)
    failure_object(code, out, err)
    assert err.startswith("kvmtune: error: ") and "╭" not in err and "Traceback" not in err


def test_every_json_command_has_its_bad_input():
    takes_json = {c.name for c in COMMANDS.values() if any(_json_spellings(c))}
    assert takes_json == set(BAD_INPUT)


@pytest.mark.parametrize("name, argv", list(_cases()), ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_json_commands_print_one_object_on_bad_input(name, argv, run_cli):
    assert_one_failure_object(*run_cli(*argv))


@pytest.mark.parametrize("argv", [["check", "--bogus"], ["apply"], ["chek"], ["check", "--only"],
                                  ["plan", "a", "b"], ["check", "--json", "--format", "text"]])
def test_usage_errors_in_kvmtune_style_only(argv, run_cli):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert err.startswith("kvmtune: error: ") and "╭" not in err and "│" not in err, err
    assert "help" in err  # where to look next


def test_text_output_stays_text_on_failure(run_cli):
    code, out, err = run_cli("apply", os.path.join(HERE, "examples/plain-command.yml"))
    assert code == 2 and out == "" and "not a profile" in err


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["proc/sys/vm/swappiness"] = "60\n"
    return write_tree(str(tmp_path / "host"), files)


def test_refused_apply_prints_one_object_exit_4(root, tmp_path, run_cli):
    knob = os.path.join(root, "proc/sys/vm/swappiness")
    os.unlink(knob)
    write_tree(root, {"swappiness.real": "60\n"})
    os.symlink("../../../swappiness.real", knob)  # kvmtune never writes through a link
    profile = tmp_path / "p.yaml"
    profile.write_text("sysctl:\n  vm.swappiness: 7\n")
    code, out, err = run_cli("--root", root, "apply", str(profile), "--json", "--no-persist")
    assert code == 4
    assert_one_failure_object(code, out, err)


def test_busy_apply_prints_one_object_exit_5(root, tmp_path, run_cli):
    from kvmtune.host.writable import WritableHost

    host = WritableHost(root)
    profile = tmp_path / "p.yaml"
    profile.write_text("sysctl:\n  vm.swappiness: 7\n")
    fd = host.lock(wait=False)
    try:
        code, out, err = run_cli("--root", root, "apply", str(profile), "--json")
    finally:
        host.unlock(fd)
    assert code == 5
    assert_one_failure_object(code, out, err)


def test_plain_command_example_parses_as_ansible_would():
    """examples/plain-command.yml reads (stdout | from_json).changed and .failed: a profile that is
    not one gives failed, not a parse error that Ansible counts as changed."""
    env = {**os.environ, "PYTHONPATH": HERE}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "bin/kvmtune"), "apply",
                           os.path.join(HERE, "examples/plain-command.yml"), "--json"],
                          capture_output=True, text=True, env=env, cwd=HERE)
    out = json.loads(proc.stdout)
    assert proc.returncode == 2 and out == {"failed": True, "changed": False, "msg": out["msg"], "rc": 2}
