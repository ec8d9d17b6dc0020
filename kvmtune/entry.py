"""The console entry point: error handling, exit codes, and a fast path past typer.

typer (which now imports pydantic) takes about 100 ms to import here, more than
the whole budget of ``check`` (70 ms) and of an ``apply`` that has nothing to do
(150 ms). So plain invocations of the hot commands are parsed from the small
table below; anything it does not fully understand (--help, a typo, a missing
value, other commands) goes to the typer app in kvmtune.cli, which stays the
reference definition. A test holds the two to the same meaning, command by
command and option by option.
"""

from __future__ import annotations

import os
import sys

from kvmtune.errors import EXIT_INTERNAL, EXIT_USAGE, KvmtuneError

_APPLY_FLAGS = {"--diff": ("diff", True), "--json": ("json", True), "--no-persist": ("persist", False),
                "--force": ("force", True)}
# command -> (options class path, flags, value options, list options, positional, fixed settings)
COMMANDS = {
    "check": ("kvmtune.commands.check:CheckOptions",
              {"--json": ("format", "json"), "-q": ("quiet", True), "--quiet": ("quiet", True),
               "--strict": ("strict", True)},
              {"--root": "root", "--only": "only", "--skip": "skip", "--as-user": "as_user",
               "--format": "format", "--output": "output", "-o": "output"},
              ("only", "skip"), None, {}),
    "apply": ("kvmtune.commands.apply:ApplyOptions",
              {**_APPLY_FLAGS, "--check": ("check", True), "--keep-partial": ("keep_partial", True),
               "--wait": ("wait", True), "--resume": ("resume", True)},
              {"--root": "root"}, (), "profile", {}),
    "plan": ("kvmtune.commands.apply:ApplyOptions", _APPLY_FLAGS, {"--root": "root"}, (), "profile",
             {"check": True}),
    "verify": ("kvmtune.commands.apply:ApplyOptions",
               {k: v for k, v in _APPLY_FLAGS.items()}, {"--root": "root"}, (), "profile", {}),
    "cpu-models": ("kvmtune.commands.cpu:CpuModelsOptions",
                   {"--json": ("json", True), "--assume-undecided": ("assume_undecided", True)},
                   {"--root": "root", "--source": "source"}, (), None, {}),
    "report": ("kvmtune.commands.report:PathsOptions", {"--json": ("json", True)}, {}, (), "paths*", {}),
    "cpu-baseline": ("kvmtune.commands.report:PathsOptions",
                     {"--json": ("json", True), "--assume-undecided": ("assume_undecided", True)},
                     {}, (), "paths*", {}),
    "rollback": ("kvmtune.commands.apply:ApplyOptions",
                 {"--check": ("check", True), "--diff": ("diff", True), "--json": ("json", True),
                  "--wait": ("wait", True)}, {"--root": "root"}, (), None, {}),
}
RUNNERS = {"check": "kvmtune.commands.check:run_check", "apply": "kvmtune.commands.apply:run_apply",
           "plan": "kvmtune.commands.apply:run_apply", "verify": "kvmtune.commands.apply:run_verify",
           "rollback": "kvmtune.commands.apply:run_rollback", "cpu-models": "kvmtune.commands.cpu:run_cpu_models",
           "report": "kvmtune.commands.report:run_report", "cpu-baseline": "kvmtune.commands.cpu:run_cpu_baseline"}


def _load(ref: str):
    import importlib

    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def fast_options(argv: list[str]):
    """(command, options) for a plain ``[--root DIR] COMMAND [options]``, else None."""
    args = list(argv)
    root = None
    if args[:1] == ["--root"] and len(args) >= 2 and not args[1].startswith("-"):
        root, args = args[1], args[2:]
    if not args or args[0] not in COMMANDS:
        return None
    command = args.pop(0)
    cls_ref, flags, values, lists, positional, fixed = COMMANDS[command]
    opts = _load(cls_ref)()
    for key, value in fixed.items():
        setattr(opts, key, value)
    if root is not None:
        opts.root = root
    seen_positional = False
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if not eq and arg in flags:
            field, value = flags[arg]
            setattr(opts, field, value)
        elif name in values and (eq or args):
            value = inline if eq else args.pop(0)
            if not eq and value.startswith("-"):
                return None
            field = values[name]
            if field in lists:
                getattr(opts, field).append(value)
            else:
                setattr(opts, field, value)
        elif positional and positional.endswith("*") and not arg.startswith("-"):
            getattr(opts, positional[:-1]).append(arg)  # PATH... takes every plain word
            seen_positional = True
        elif positional and not seen_positional and not arg.startswith("-"):
            setattr(opts, positional, arg)
            seen_positional = True
        else:
            return None
    if positional and not seen_positional:
        return None
    return command, opts


def guarded(fn, *args) -> int:
    """Run a command body: domain errors become a message and their exit code."""
    try:
        return fn(*args)
    except KvmtuneError as exc:
        sys.stderr.write(f"kvmtune: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("kvmtune: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an internal error: say so plainly, trace only on request
        if os.environ.get("KVMTUNE_DEBUG") == "1":
            raise
        sys.stderr.write(f"kvmtune: internal error: {type(exc).__name__}: {exc}\n"
                         "(set KVMTUNE_DEBUG=1 to see the traceback)\n")
        return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    fast = fast_options(argv)
    if fast is not None:
        command, opts = fast
        return guarded(_load(RUNNERS[command]), opts)
    from kvmtune.cli import app

    try:
        app(args=argv, prog_name="kvmtune")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    return 0
