"""``kvmtune check``: read the host, judge it, print the report, return the exit code."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError



class CheckOptions(Options):
    """What ``kvmtune check`` was asked to do; built by the typer command or the fast path."""

    def __init__(self, root: str = "/", format: str = "text", quiet: bool = False,
                 strict: bool = False, only: list[str] | None = None, skip: list[str] | None = None,
                 as_user: str | None = None, output: str | None = None, intents: list[str] | None = None):
        self.root = root
        self.format = format
        self.quiet = quiet
        self.strict = strict
        self.only = list(only or [])
        self.skip = list(skip or [])
        self.as_user = as_user
        self.output = output
        self.intents = list(intents or [])  # --for, as given; parse_intents judges them



def split_selectors(values: list[str] | None) -> list[str]:
    """``--only kvm,cpu --only ksm`` -> [kvm, cpu, ksm]."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def check_report(opts: CheckOptions, host_json: bool = True):
    """Read, then judge: the Report the CLI prints and the Ansible module returns.
    ``host_json``: also read what the JSON host object of a whole run shows."""
    import os

    from kvmtune.checks import read_phase, run_checks
    from kvmtune.checks.intents import parse_intents
    from kvmtune.host.door import Host

    intents = parse_intents(opts.intents)  # bad input first: it does not depend on the host
    if opts.format == "nfd":  # a label per intent: judge them all
        from kvmtune.checks.intents import INTENTS
        intents = parse_intents([*intents, *INTENTS])
    if not os.path.isdir(opts.root):
        raise UsageError(f"--root: {opts.root} is not a directory")
    only, skip = split_selectors(opts.only), split_selectors(opts.skip)
    facts = read_phase(Host(opts.root), only, skip, opts.as_user, host_json=host_json, intents=intents)
    accounts = facts.known("accounts")
    if opts.as_user and accounts is not None and accounts.user(opts.as_user) is None:
        raise UsageError(f"--as-user: no user named {opts.as_user!r} on this host")
    return run_checks(facts, only, skip, opts.strict, intents)


def run_check(opts: CheckOptions) -> int:
    import io
    import sys

    report = check_report(opts, host_json=opts.format != "text")
    stream = sys.stdout if opts.output is None else io.StringIO()
    if opts.format == "json":
        from kvmtune.render.json_out import report_json, write_json
        write_json(report_json(report), stream)
    elif opts.format == "prometheus":
        from kvmtune.render.prometheus import render_prometheus
        stream.write(render_prometheus(report))
    elif opts.format == "nfd":
        from kvmtune.render.nfd import render_nfd
        stream.write(render_nfd(report))
    else:
        from kvmtune.render.check_text import render_check_text
        render_check_text(report, quiet=opts.quiet, stream=stream)
    if opts.output is not None:
        write_output(opts.output, stream.getvalue())
    if opts.format == "nfd":  # the labels carry every intent; the exit says whether general holds
        return EXIT_OK if "general" in report.ready_for else EXIT_NOT_READY
    return EXIT_OK if report.ready else EXIT_NOT_READY


def write_output(path: str, text: str) -> None:
    """--output: replace the file atomically, so a collector never reads half a report."""
    from kvmtune.host.atomic import atomic_write

    try:
        atomic_write(path, text)
    except OSError as exc:
        raise UsageError(f"--output {path}: {exc.strerror or exc}") from None
