"""The typer application: options in, one core function, an exit code out."""

from __future__ import annotations

from typing import Optional

import typer

from kvmtune.entry import guarded

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Check whether this Linux host is ready to run KVM guests, and tune it for them.",
)

ROOT_HELP = "Read (and change) the host tree under DIR instead of / (a snapshot: no ioctls, no mounts)."


@app.callback()
def _global(ctx: typer.Context,
            root: str = typer.Option("/", "--root", metavar="DIR", help=ROOT_HELP)) -> None:
    ctx.obj = {"root": root}


def _root(ctx: typer.Context, root: Optional[str]) -> str:
    return root if root is not None else ctx.obj["root"]


@app.command()
def check(
    ctx: typer.Context,
    json_: bool = typer.Option(False, "--json", help="One JSON object on stdout (same as --format json)."),
    format_: str = typer.Option("text", "--format", help="text, json, or prometheus (node_exporter textfile format; use with --output)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only what does not pass."),
    strict: bool = typer.Option(False, "--strict", help="A warning or unknown also means not ready (exit 1)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Run only these check ids or areas (repeat or comma-separate)."),
    skip: Optional[list[str]] = typer.Option(None, "--skip", help="Skip these check ids or areas."),
    as_user: Optional[str] = typer.Option(None, "--as-user", metavar="USER", help="Also check /dev/kvm access for USER (e.g. libvirt-qemu)."),
    output: Optional[str] = typer.Option(None, "-o", "--output", metavar="PATH", help="Write the report to PATH atomically."),
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Judge this host's readiness for KVM guests. Exit 0 ready, 1 not ready, 2 bad usage, 3 internal error."""
    from kvmtune.commands.check import CheckOptions, run_check

    opts = CheckOptions(root=_root(ctx, root), format="json" if json_ else format_, quiet=quiet,
                        strict=strict, only=list(only or []), skip=list(skip or []),
                        as_user=as_user, output=output)
    raise typer.Exit(guarded(run_check, opts))


PROFILE_ARG = typer.Argument(..., metavar="PROFILE", help="A shipped profile name (see 'kvmtune profiles') or a path to a YAML file.")
JSON_OPT = typer.Option(False, "--json", help="Exactly one JSON object on stdout (logs go to stderr).")
DIFF_OPT = typer.Option(False, "--diff", help="Show before/after of every value and persisted file.")
WAIT_OPT = typer.Option(False, "--wait", help="Wait for another apply/rollback to finish instead of failing.")
NO_PERSIST_OPT = typer.Option(False, "--no-persist", help="The running kernel only: no boot-time files.")
FORCE_OPT = typer.Option(False, "--force", help="Allow huge pages to eat into the safe memory reserve.")


def _apply_opts(ctx, root, **kw):
    from kvmtune.commands.apply import ApplyOptions

    return ApplyOptions(root=_root(ctx, root), **kw)


@app.command()
def apply(
    ctx: typer.Context,
    profile: str = PROFILE_ARG,
    check: bool = typer.Option(False, "--check", help="Plan only: print what would change and write nothing."),
    diff: bool = DIFF_OPT,
    json_: bool = JSON_OPT,
    no_persist: bool = NO_PERSIST_OPT,
    force: bool = FORCE_OPT,
    keep_partial: bool = typer.Option(False, "--keep-partial", help="If a change fails, keep the changes made before it."),
    wait: bool = WAIT_OPT,
    resume: bool = typer.Option(False, "--resume", help="Carry on after an interrupted apply (instead of 'kvmtune rollback')."),
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Make this host match a profile, now and after reboot. Exit 0 success, 1 failed (undone), 2 invalid profile."""
    from kvmtune.commands.apply import run_apply

    opts = _apply_opts(ctx, root, profile=profile, check=check, diff=diff, json=json_, persist=not no_persist,
                       force=force, keep_partial=keep_partial, wait=wait, resume=resume)
    raise typer.Exit(guarded(run_apply, opts))


@app.command()
def plan(
    ctx: typer.Context,
    profile: str = PROFILE_ARG,
    diff: bool = DIFF_OPT,
    json_: bool = JSON_OPT,
    no_persist: bool = NO_PERSIST_OPT,
    force: bool = FORCE_OPT,
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Show what 'apply' would change (the same as 'apply --check'); writes nothing."""
    from kvmtune.commands.apply import run_apply

    opts = _apply_opts(ctx, root, profile=profile, check=True, diff=diff, json=json_, persist=not no_persist,
                       force=force)
    raise typer.Exit(guarded(run_apply, opts))


@app.command()
def verify(
    ctx: typer.Context,
    profile: str = PROFILE_ARG,
    diff: bool = DIFF_OPT,
    json_: bool = JSON_OPT,
    no_persist: bool = NO_PERSIST_OPT,
    force: bool = typer.Option(False, "--force", help="Accept a profile that was applied with --force."),
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Report every setting of a profile that drifted, live and persisted. Exit 1 on drift."""
    from kvmtune.commands.apply import run_verify

    opts = _apply_opts(ctx, root, profile=profile, diff=diff, json=json_, persist=not no_persist, force=force)
    raise typer.Exit(guarded(run_verify, opts))


@app.command()
def rollback(
    ctx: typer.Context,
    check: bool = typer.Option(False, "--check", help="Show what would be restored; write nothing."),
    diff: bool = DIFF_OPT,
    json_: bool = JSON_OPT,
    wait: bool = WAIT_OPT,
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Restore every value and file kvmtune changed to what was there before kvmtune."""
    from kvmtune.commands.apply import run_rollback

    opts = _apply_opts(ctx, root, check=check, diff=diff, json=json_, wait=wait)
    raise typer.Exit(guarded(run_rollback, opts))


@app.command()
def profiles(json_: bool = JSON_OPT) -> None:
    """List the shipped profiles."""
    from kvmtune.commands.apply import run_profiles

    raise typer.Exit(guarded(run_profiles, json_))


@app.command()
def report(
    paths: list[str] = typer.Argument(..., metavar="PATH...", help="check --json results: files, or directories (ansible --tree, fetch)."),
    json_: bool = JSON_OPT,
) -> None:
    """The fleet at a glance from many hosts' check results. Exit 1 if any host is not ready or unreadable."""
    from kvmtune.commands.report import PathsOptions, run_report

    raise typer.Exit(guarded(run_report, PathsOptions(paths, json_)))


@app.command("cpu-models")
def cpu_models(
    ctx: typer.Context,
    json_: bool = JSON_OPT,
    assume_undecided: bool = typer.Option(False, "--assume-undecided", help="Count features the source cannot decide as present."),
    source: str = typer.Option("auto", "--source", help="auto (KVM on a live host, else cpuinfo), kvm or cpuinfo."),
    root: Optional[str] = typer.Option(None, "--root", metavar="DIR", help=ROOT_HELP),
) -> None:
    """Which named guest CPU models this host can run, the best per vendor, and the -cpu/libvirt strings."""
    from kvmtune.commands.cpu import CpuModelsOptions, run_cpu_models

    opts = CpuModelsOptions(root=_root(ctx, root), json=json_, assume_undecided=assume_undecided, source=source)
    raise typer.Exit(guarded(run_cpu_models, opts))


@app.command("cpu-baseline")
def cpu_baseline(
    paths: list[str] = typer.Argument(..., metavar="RESULT...", help="check --json results: files or directories."),
    json_: bool = JSON_OPT,
    assume_undecided: bool = typer.Option(False, "--assume-undecided", help="Count features a source cannot decide as present."),
) -> None:
    """The newest named CPU model every given host can run (safe for live migration), and who holds it back."""
    from kvmtune.commands.cpu import run_cpu_baseline
    from kvmtune.commands.report import PathsOptions

    raise typer.Exit(guarded(run_cpu_baseline, PathsOptions(paths, json_, assume_undecided)))
