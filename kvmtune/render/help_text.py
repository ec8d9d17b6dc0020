"""--help screens from the one declaration of the command line (kvmtune.cli_spec).

Plain text that wraps to the terminal, options with their metavar (never a type label),
choices and defaults, and what the command does to the host under --root.
"""

from __future__ import annotations

import shutil
import textwrap

from kvmtune.cli_spec import COMMANDS, COMPLETION, EFFECTS, ROOT, VERSION, Cmd, Opt

PROGRAM = "Check whether this Linux host is ready to run KVM guests, tune it for them, and show what it buys."


def _width() -> int:
    return max(60, min(shutil.get_terminal_size((80, 24)).columns, 100))


def _options(rows: list[tuple[str, str]], width: int) -> list[str]:
    left = min(max((len(r[0]) for r in rows), default=0) + 2, 28)
    out = []
    for head, text in rows:
        wrapped = textwrap.wrap(text, width - left - 2) or [""]
        if len(head) + 2 > left:
            out.append(f"  {head}")
            out += [" " * (left + 2) + line for line in wrapped]
        else:
            out.append(f"  {head:<{left}}{wrapped[0]}")
            out += [" " * (left + 2) + line for line in wrapped[1:]]
    return out


def option_head(opt: Opt) -> str:
    names = ", ".join(opt.names)
    return names if opt.kind == "flag" else f"{names} {opt.metavar}"


def option_text(cmd: Cmd, opt: Opt, defaults) -> str:
    text = opt.help
    if opt.kind == "list":
        text += " May be given more than once."
    default = getattr(defaults, opt.field, None) if defaults is not None else None
    if opt.kind == "value" and default not in (None, "", []):
        text += f" [default: {default}]"
    return text


def program_help() -> str:
    width = _width()
    lines = ["Usage: kvmtune [--root DIR] COMMAND [OPTIONS]", ""]
    lines += textwrap.wrap(PROGRAM, width) + ["", "Options:"]
    lines += _options([(option_head(ROOT), ROOT.help), (VERSION, "Print kvmtune's version and exit."),
                       *COMPLETION, ("--help", "Show this message and exit.")], width)
    lines += ["", "Commands:"]
    lines += _options([(c.name, c.help.split(". ")[0].rstrip(".") + ".") for c in COMMANDS.values()], width)
    lines += ["", "Run 'kvmtune COMMAND --help' for a command's options."]
    return "\n".join(lines) + "\n"


def command_help(cmd: Cmd) -> str:
    from kvmtune.cli_parse import _load

    width = _width()
    defaults = _load(cmd.options_class)()
    positional = ""
    if cmd.positional:
        optional = cmd.positional[0].endswith("?")
        positional = f" [{cmd.positional[1]}]" if optional else f" {cmd.positional[1]}"
    lines = [f"Usage: kvmtune {'[--root DIR] ' if cmd.takes_root else ''}{cmd.name} [OPTIONS]{positional}", ""]
    lines += textwrap.wrap(cmd.help, width) + textwrap.wrap(EFFECTS[cmd.effect], width)
    if cmd.positional:
        lines += ["", "Arguments:"] + _options([(cmd.positional[1], cmd.positional[2])], width)
    rows = [(option_head(o), option_text(cmd, o, defaults)) for o in cmd.options]
    if cmd.takes_root:
        rows.append((option_head(ROOT), ROOT.help))
    rows.append(("--help", "Show this message and exit."))
    lines += ["", "Options:"] + _options(rows, width)
    return "\n".join(lines) + "\n"
