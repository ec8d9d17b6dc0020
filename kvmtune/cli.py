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
    format_: str = typer.Option("text", "--format", help="text or json."),
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
