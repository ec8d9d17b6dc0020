"""The console entry point: error handling, exit codes, and a fast path for ``check``.

typer costs about 75 ms to import here, more than check's whole budget. So a
``kvmtune check`` with ordinary options is parsed by ``fast_check_options``;
anything it does not fully understand (--help, a typo, a missing value, another
command) goes to the typer app in kvmtune.cli, which stays the reference
definition. A test holds the two to the same meaning for every option.
"""

from __future__ import annotations

import os
import sys

from kvmtune.errors import EXIT_INTERNAL, EXIT_USAGE, KvmtuneError

_FLAGS = {"--json": ("format", "json"), "-q": ("quiet", True), "--quiet": ("quiet", True),
          "--strict": ("strict", True)}
_VALUES = {"--root": "root", "--only": "only", "--skip": "skip", "--as-user": "as_user",
           "--format": "format", "--output": "output", "-o": "output"}
_LISTS = ("only", "skip")


def fast_check_options(argv: list[str]):
    """CheckOptions for a plain ``[--root DIR] check [options]``, else None."""
    from kvmtune.commands.check import CheckOptions

    opts = CheckOptions()
    args = list(argv)
    if args[:1] == ["--root"] and len(args) >= 2:
        opts.root = args[1]
        args = args[2:]
    if args[:1] != ["check"]:
        return None
    args = args[1:]
    while args:
        arg = args.pop(0)
        name, eq, inline = arg.partition("=")
        if not eq and arg in _FLAGS:
            field, value = _FLAGS[arg]
            setattr(opts, field, value)
        elif name in _VALUES and (eq or args):
            value = inline if eq else args.pop(0)
            if not eq and value.startswith("-"):
                return None
            field = _VALUES[name]
            if field in _LISTS:
                getattr(opts, field).append(value)
            else:
                setattr(opts, field, value)
        else:
            return None
    return opts


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
    opts = fast_check_options(argv)
    if opts is not None:
        from kvmtune.commands.check import run_check
        return guarded(run_check, opts)
    from kvmtune.cli import app

    try:
        app(args=argv, prog_name="kvmtune")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    return 0
