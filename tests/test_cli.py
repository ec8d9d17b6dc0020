"""The command line: exit codes, output channels, the fast path, errors without tracebacks."""

import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kvmtune.checks import read_phase, run_checks
from kvmtune.commands.check import CheckOptions
from kvmtune.cli_parse import fast_options
from kvmtune.host.door import Host
from kvmtune.render.check_text import render_check_text

def _sample(opt):
    return opt.choices[-1] if opt.choices else {"IDS": "kvm", "USER": "libvirt-qemu", "PATH": "/tmp/x.json"}.get(
        opt.metavar, "v")


def _positional(cmd):
    if cmd.positional is None:
        return []
    return ["/tmp/a", "/tmp/b"] if cmd.positional[0].endswith("*") else ["dense"]


def _variants():
    """Every spelling of every option of every command, alone and all together, --root before
    and after the command."""
    from kvmtune.cli_spec import COMMANDS

    for cmd in COMMANDS.values():
        words = _positional(cmd)
        every = []
        for opt in cmd.options:
            for name in opt.names:
                if opt.kind == "flag":
                    yield [cmd.name, *words, name]
                else:
                    yield [cmd.name, *words, name, _sample(opt)]
                    if name.startswith("--"):
                        yield [cmd.name, name + "=" + _sample(opt), *words]
            if opt.param != "json_":  # --json and --format together contradict: see below
                every += [opt.names[-1]] + ([] if opt.kind == "flag" else [_sample(opt)])
        yield [cmd.name, *words]
        yield [cmd.name, *every, *words]
        if cmd.takes_root:
            yield ["--root", "/tmp", cmd.name, *words]
            yield [cmd.name, *words, "--root", "/tmp"]
            yield [cmd.name, "--root=/tmp", *words]


@pytest.mark.parametrize("argv", list(_variants()), ids=" ".join)
def test_fast_path_means_what_typer_means(argv, monkeypatch):
    """The fast path and typer's app, both made from cli_spec, build the same options."""
    from kvmtune.cli_parse import hoist_root
    from kvmtune.cli_spec import COMMANDS

    seen = []
    for cmd in COMMANDS.values():
        monkeypatch.setattr(cmd.runner.replace(":", "."), lambda opts: seen.append(opts) or 0)
    from kvmtune.cli import app

    result = CliRunner().invoke(app, hoist_root(argv))
    assert result.exit_code == 0, result.output
    parsed = fast_options(argv)
    assert parsed is not None, "the fast path gave up on a plain command line"
    assert parsed[1] == seen[0]


def test_the_click_tree_is_the_spec():
    """Every command, option, flag, arity and metavar typer built is the one in cli_spec."""
    import typer.main
    from typer.core import TyperArgument, TyperOption  # typer carries its own click

    from kvmtune.cli import app
    from kvmtune.cli_spec import COMMANDS, ROOT, VERSION

    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)
    top = {o for p in group.params for o in p.opts}
    assert top == {ROOT.names[0], VERSION, "--install-completion", "--show-completion"}  # typer's completion
    for name, cmd in COMMANDS.items():
        click_cmd = group.commands[name]
        options = {tuple(p.opts): p for p in click_cmd.params if isinstance(p, TyperOption)}
        assert set(options) - {("--help",)} == {o.names for o in cmd.options}, name
        for opt in cmd.options:
            param = options[opt.names]
            assert param.is_flag == (opt.kind == "flag"), (name, opt.names)
            assert param.multiple == (opt.kind == "list"), (name, opt.names)
            assert (param.metavar or None) == opt.metavar, (name, opt.names)
        arguments = [p for p in click_cmd.params if isinstance(p, TyperArgument)]
        if cmd.positional is None:
            assert arguments == []
        else:
            (arg,) = arguments
            spec = cmd.positional[0]
            assert arg.nargs == (-1 if spec.endswith("*") else 1)
            assert arg.required == (not spec.endswith("?")), name


@pytest.mark.parametrize("argv", [["check", "--help"], ["check", "--bogus"], ["check", "--only"],
                                  ["apply"], [], ["check", "--root", "--json"], ["apply", "a", "b"],
                                  ["apply", "--help"], ["rollback", "extra"], ["check", "-o=/tmp/x"],
                                  ["check", "-qo", "/tmp/x"], ["plan", "x", "--keep-partial"], ["report"],
                                  ["cpu-baseline", "--json"], ["report", "a", "--assume-undecided"],
                                  ["check", "--json=yes"], ["check", "--", "x"]])
def test_fast_path_defers_anything_unusual(argv):
    assert fast_options(argv) is None


@pytest.mark.parametrize("argv, message", [
    (["check", "--json", "--format", "text"], "--json and --format text contradict each other"),
    (["check", "--format", "yaml"], "--format: expected one of text, json, prometheus, nfd"),
    (["cpu-models", "--source", "qemu"], "--source: expected one of auto, kvm, cpuinfo"),
])
def test_contradictions_and_bad_choices_are_usage_errors_on_both_paths(argv, message, run_cli):
    code, out, err = run_cli(*argv)
    assert code == 2 and message in err
    code, out, err = run_cli(*argv[:1], "--bogus-to-force-typer", *argv[1:])
    assert code == 2


@pytest.mark.parametrize("argv", [["report", "/tmp/a"], ["cpu-baseline", "/tmp/a"], ["profiles"], ["bench"]])
def test_root_on_a_command_that_reads_no_host_is_a_usage_error(argv, run_cli):
    for line in (["--root", "/tmp", *argv], [*argv, "--root=/tmp"], [*argv, "--root", "/tmp", "-x"]):
        code, out, err = run_cli(*line)
        assert code == 2, line


def test_version(run_cli):
    from kvmtune import __version__

    assert run_cli("--version") == (0, f"kvmtune {__version__}\n", "")


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
    from tests.test_checks import facts_as_live

    plain = read_phase(Host(str(host_roots["synthetic-intel-vtx"])), [], [])
    facts = facts_as_live(host_roots["synthetic-intel-vtx"], live=False,
                          cpu=plain.cpu._replace(model_name="[bold red]Evil[/bold red] CPU"))
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


# What the Ansible modules leave out of a command's options, and why: Ansible renders
# results itself, and has its own check mode and --diff.
ANSIBLE_ELSEWHERE = {
    "check": {"format": "the module returns the JSON object itself", "quiet": "text output only",
              "output": "Ansible keeps results (register, fetch)"},
    "apply": {"check": "Ansible's check mode", "diff": "Ansible's --diff", "json": "the module returns JSON"},
}
ANSIBLE_NAMES = {"check": ("check", {}), "apply": ("profile", {"profile": "name"})}


@pytest.mark.parametrize("command", ["check", "apply"])
def test_ansible_modules_declare_what_the_command_line_declares(command):
    """The collection's argument_spec and documented options follow cli_spec: every option
    of the command is a module option of the same meaning and default, or said why not."""
    import ast
    from pathlib import Path

    import yaml

    from kvmtune.cli_parse import _load
    from kvmtune.cli_spec import COMMANDS

    module, renames = ANSIBLE_NAMES[command]
    path = Path(__file__).parent.parent / "collections/ansible_collections/kvmtune/host/plugins/modules" / f"{module}.py"
    tree = ast.parse(path.read_text())
    docs = {n.targets[0].id: n.value.value for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)}
    documented = yaml.safe_load(docs["DOCUMENTATION"])["options"]
    spec_call = next(n for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "argument_spec")
    argument_spec = {k.arg: {kw.arg: ast.literal_eval(kw.value) for kw in k.value.keywords}
                     for k in spec_call.value.keywords}
    assert set(argument_spec) == set(documented)
    cmd = COMMANDS[command]
    defaults = _load(cmd.options_class)()
    fields = {o.field for o in cmd.options} | {"root"} | ({cmd.positional[0]} if cmd.positional else set())
    for field in sorted(fields):
        if field in ANSIBLE_ELSEWHERE[command]:
            continue
        name = renames.get(field, field)
        assert name in argument_spec, f"{command} --{field} has no module option '{name}'"
        option = argument_spec[name]
        if option.get("type") == "bool":
            assert option.get("default") == getattr(defaults, field), (field, option)
        if option.get("type") == "list":
            assert option.get("default") == [] and getattr(defaults, field) == []
        assert documented[name].get("default") == option.get("default"), name


def test_quiet_hides_info_and_skip_too(host_roots, run_cli):
    code, out, _ = run_cli("--root", str(host_roots["synthetic-nested-guest"]), "check", "-q")
    assert "INFO" not in out and "SKIP" not in out and "PASS" not in out
    assert "WARN" in out


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_hint_command_is_never_broken_on_a_terminal(width, host_roots, monkeypatch):
    """At any width, every quoted command of every hint stands whole on one printed line."""
    import re

    from kvmtune.render.check_text import render_check_text

    monkeypatch.setenv("COLUMNS", str(width))
    for name in ("synthetic-no-dev-kvm", "synthetic-nested-guest", "synthetic-intel-shadow-paging"):
        facts = read_phase(Host(str(host_roots[name])), [], [])
        report = run_checks(facts)
        buf = io.StringIO()
        render_check_text(report, stream=buf, colour=True)
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in buf.getvalue().splitlines()]
        commands = [m for c in report.checks if c.hint and c.status != "pass"
                    for m in re.findall(r"(?:^|\s)('[^']*[^'\s=]')(?=[\s.,;:)]|$)", c.hint)]
        assert commands
        for command in commands:
            assert any(command in line for line in lines), (name, width, command)
            assert all(len(line) <= width for line in lines if command not in line)


def test_plurals_and_the_verdict_is_not_counted(host_roots, run_cli):
    code, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", "--only", "kvm.device")
    assert "1 check, none blocking" in out
    assert out.strip().endswith("1 pass"), out


@pytest.mark.parametrize("words, expected", [
    ("kvmtune ch", {"check"}),
    ("kvmtune check --f", {"--format", "--for"}),
    ("kvmtune check --format ", {"text", "json", "prometheus", "nfd"}),
    ("kvmtune cpu-models --source ", {"auto", "kvm", "cpuinfo"}),
    ("kvmtune apply d", {"dense"}),
])
def test_shell_completion_offers_commands_options_choices_and_profiles(words, expected):
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(cword), _KVMTUNE_COMPLETE="complete_bash")
    proc = subprocess.run([sys.executable, "-m", "kvmtune"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == expected


def test_the_man_page_is_generated_from_the_cli_declaration(tmp_path):
    from pathlib import Path
    import shutil

    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "make_manpage.py"), "--out", str(tmp_path / "k.1")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "k.1").read_text() == (repo / "man" / "kvmtune.1").read_text(), \
        "man/kvmtune.1 is stale: run python scripts/make_manpage.py"
    from kvmtune.cli_spec import COMMANDS

    page = (tmp_path / "k.1").read_text()
    for name, cmd in COMMANDS.items():
        assert f".SS {name.replace('-', chr(92) + '-')}" in page
        for opt in cmd.options:
            assert opt.names[-1].replace("-", "\\-") in page, (name, opt.names)
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed: the page's syntax is not checked")
    render = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "k.1")],
                            capture_output=True, text=True, timeout=60)
    assert render.returncode == 0 and not render.stderr, render.stderr


def _accepts_root(name, words, monkeypatch) -> bool:
    """Whether both parsers take --root for this command (the command itself stubbed out)."""
    from kvmtune.cli import app
    from kvmtune.cli_spec import COMMANDS
    from kvmtune.errors import UsageError

    for cmd in COMMANDS.values():
        monkeypatch.setattr(cmd.runner.replace(":", "."), lambda opts: 0)
    typer_ok = CliRunner().invoke(app, ["--root", "/tmp", name, *words]).exit_code == 0
    try:
        fast_ok = fast_options([name, *words, "--root", "/tmp"]) is not None
    except UsageError:
        fast_ok = False
    assert typer_ok == fast_ok, name
    return typer_ok


def _help_options(text: str) -> set:
    import re

    section = text.split("\nOptions:\n", 1)[1]
    return {n for line in section.splitlines() if line.startswith("  -")
            for n in re.findall(r"(?<![\w-])(--?[\w][\w-]*)", line.split("  ")[1] if line.startswith("  ") else line)[:2]}


def test_every_help_screen_lists_exactly_what_its_parser_takes(monkeypatch):
    """Walk the whole click tree typer built: each command's --help names every option its
    parser accepts (--root included when, and only when, the parser takes it), and no other."""
    import typer.main
    from typer._click.core import Context  # typer carries its own click

    from kvmtune.cli import app
    from kvmtune.cli_spec import COMMANDS

    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)
    for name, click_cmd in group.commands.items():
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0, name
        listed = _help_options(result.output)
        params = click_cmd.get_params(Context(click_cmd))  # --help included
        takes = {o for p in params if p.param_type_name == "option" for o in p.opts}
        if _accepts_root(name, _positional(COMMANDS[name]), monkeypatch):
            takes.add("--root")
        assert listed == takes, (name, listed ^ takes)
        usage = result.output.splitlines()[0]
        assert ("[--root DIR]" in usage) == ("--root" in takes), (name, usage)


@pytest.mark.parametrize("argv", [
    ["--root", "/nonexistent\x1b[2J", "check"],
    ["check", "--only", "\x1b]0;owned\x07"],
    ["apply", "/nonexistent/\x1b[31mred.yaml"],
    ["report", "/nonexistent/\u202eevil.json"],
    ["check", "--format", "\x9b2J"],
    ["--root", "/tmp", "check", "-o", "/nonexistent/\x1b[5m/out.json"],
])
def test_no_message_echoes_a_control_character(argv, run_cli):
    code, out, err = run_cli(*argv)
    assert code == 2 and err, (code, err)
    assert all(c.isprintable() or c == "\n" for c in err), repr(err)
