"""The console entry point: error handling, exit codes, and the fast path past typer.

A plain command line is parsed by kvmtune.cli_parse from the one declaration in
kvmtune.cli_spec; anything else (--help, a typo, an unusual spelling, shell
completion) goes to the typer app in kvmtune.cli, generated from the same table.
"""

from __future__ import annotations

import os
import sys

from kvmtune.errors import EXIT_USAGE, KvmtuneError, fail, guarded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        from kvmtune import __version__

        sys.stdout.write(f"kvmtune {__version__}\n")
        return 0
    if "_KVMTUNE_COMPLETE" not in os.environ:  # shell completion is typer's
        from kvmtune.cli_parse import _load, fast_options, json_requested
        from kvmtune.cli_spec import COMMANDS

        try:
            fast = fast_options(argv)
        except KvmtuneError as exc:  # contradictory options, a choice not offered
            return fail(f"{exc}{_see_help(argv)}", exc.exit_code, json_requested(argv))
        if fast is not None:
            command, opts = fast
            return guarded(_load(COMMANDS[command].runner), opts, as_json=opts.wants_json)
    return _typer_main(argv)


def _typer_main(argv: list[str]) -> int:
    """typer's app, with its usage errors said in kvmtune's one style (not typer's box) and,
    on a --json command line, as one JSON object too."""
    import typer
    import typer.main

    from kvmtune.cli import app
    from kvmtune.cli_parse import hoist_root, json_requested

    command = typer.main.get_command(app)
    try:
        code = command.main(args=hoist_root(argv) or argv, prog_name="kvmtune", standalone_mode=False)
    except typer.TyperException as exc:  # typer's own click: every usage error derives from it
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare 'kvmtune': the help, as a usage error
            sys.stderr.write(exc.format_message() + "\n")
            return EXIT_USAGE
        return fail(exc.format_message() + _see_help(argv), getattr(exc, "exit_code", EXIT_USAGE),
                    json_requested(argv))
    except typer.Abort:
        return fail("interrupted", 130, json_requested(argv), prefix="")
    except SystemExit as exc:  # shell completion exits on its own
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    return code if isinstance(code, int) else 0


def _see_help(argv: list[str]) -> str:
    from kvmtune.cli_spec import COMMANDS

    words = [w for w in argv if w in COMMANDS][:1]
    return f" (see '{' '.join(['kvmtune', *words])} --help')"
