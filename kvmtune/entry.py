"""The console entry point: error handling, exit codes, and the fast path past typer.

A plain command line is parsed by kvmtune.cli_parse from the one declaration in
kvmtune.cli_spec; anything else (--help, a typo, an unusual spelling, shell
completion) goes to the typer app in kvmtune.cli, generated from the same table.
"""

from __future__ import annotations

import os
import sys

from kvmtune.errors import EXIT_USAGE, KvmtuneError, error_line, guarded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        from kvmtune import __version__

        sys.stdout.write(f"kvmtune {__version__}\n")
        return 0
    if "_KVMTUNE_COMPLETE" not in os.environ:  # shell completion is typer's
        from kvmtune.cli_parse import _load, fast_options
        from kvmtune.cli_spec import COMMANDS

        try:
            fast = fast_options(argv)
        except KvmtuneError as exc:  # contradictory options, a choice not offered
            sys.stderr.write(error_line(exc))
            return exc.exit_code
        if fast is not None:
            command, opts = fast
            return guarded(_load(COMMANDS[command].runner), opts)
    from kvmtune.cli import app
    from kvmtune.cli_parse import hoist_root

    try:
        app(args=hoist_root(argv) or argv, prog_name="kvmtune")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    return 0
