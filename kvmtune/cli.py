"""The typer application, generated from kvmtune.cli_spec: nothing is declared here.

typer parses what the fast path leaves to it (unusual spellings, errors with their
suggestions) and provides shell completion; the help screens come from the spec
(render/help_text), so they show metavars, not type labels.
"""

from __future__ import annotations

import inspect
from typing import List, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from kvmtune.cli_parse import build
from kvmtune.cli_spec import COMMANDS, ROOT, VERSION, Cmd
from kvmtune.errors import guarded


class SpecGroup(TyperGroup):
    def format_help(self, ctx, formatter) -> None:
        from kvmtune.render.help_text import program_help

        formatter.write(program_help())


def _spec_command(cmd: Cmd):
    class SpecCommand(TyperCommand):
        def format_help(self, ctx, formatter) -> None:
            from kvmtune.render.help_text import command_help

            formatter.write(command_help(cmd))

    return SpecCommand


def _version(value: bool) -> None:
    if value:
        from kvmtune import __version__

        typer.echo(f"kvmtune {__version__}")
        raise typer.Exit(0)


app = typer.Typer(cls=SpecGroup, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"max_content_width": 100})


@app.callback()
def _global(ctx: typer.Context,
            root: Optional[str] = typer.Option(None, *ROOT.names, metavar=ROOT.metavar, help=ROOT.help),
            version: bool = typer.Option(False, VERSION, is_eager=True, callback=_version,
                                         help="Print kvmtune's version and exit.")) -> None:
    ctx.obj = {"root": root}


def _completer(choices: tuple[str, ...]):
    return lambda incomplete: [c for c in choices if c.startswith(incomplete)]


def _profile_names(incomplete: str) -> list[str]:
    """Shipped profile names; the shell adds file names itself (complete -o default)."""
    from kvmtune.profile import shipped_profiles

    return [n for n in shipped_profiles() if n.startswith(incomplete)]


def _parameters(cmd: Cmd) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
    for opt in cmd.options:
        if opt.kind == "flag":
            default, annotation = typer.Option(False, *opt.names, help=opt.help), bool
        elif opt.kind == "value":
            default = typer.Option(None, *opt.names, metavar=opt.metavar, help=opt.help,
                                   autocompletion=_completer(opt.choices) if opt.choices else None)
            annotation = Optional[str]
        else:
            default = typer.Option(None, *opt.names, metavar=opt.metavar, help=opt.help)
            annotation = Optional[List[str]]
        params.append(inspect.Parameter(opt.param, kw, default=default, annotation=annotation))
    if cmd.positional:
        field, metavar, help_text = cmd.positional
        many, optional = field.endswith("*"), field.endswith("?")
        default = typer.Argument(None if optional else ..., metavar=metavar, help=help_text,
                                 autocompletion=_profile_names if field == "profile" else None)
        annotation = List[str] if many else Optional[str] if optional else str
        params.append(inspect.Parameter(field.rstrip("*?"), kw, default=default, annotation=annotation))
    return params


def _command(cmd: Cmd):
    def run(ctx: typer.Context, **given) -> None:
        from kvmtune.cli_parse import _load

        settings = []
        for opt in cmd.options:
            value = given.get(opt.param)
            if opt.kind == "flag" and value:
                settings.append((opt, opt.value))
            elif opt.kind == "value" and value is not None:
                settings.append((opt, value))
            elif opt.kind == "list":
                settings += [(opt, v) for v in value or ()]
        words = []
        if cmd.positional:
            value = given.get(cmd.positional[0].rstrip("*?"))
            words = list(value) if isinstance(value, list) else [] if value is None else [value]
        from kvmtune.cli_parse import asks_json

        root = (ctx.obj or {}).get("root")
        as_json = any(asks_json(opt, value) for opt, value in settings)
        raise typer.Exit(guarded(lambda: _load(cmd.runner)(build(cmd, settings, words, root)), as_json=as_json))

    params = _parameters(cmd)
    run.__signature__ = inspect.Signature(params)
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__doc__ = cmd.help
    return run


for _cmd in COMMANDS.values():
    app.command(_cmd.name, cls=_spec_command(_cmd), help=_cmd.help)(_command(_cmd))
