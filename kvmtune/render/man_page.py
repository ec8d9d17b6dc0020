"""kvmtune.1, the man page, from the one declaration of the command line (kvmtune.cli_spec).

Plain roff with the man macros; deterministic (no date), so a test can compare the
committed page with a fresh one.
"""

from __future__ import annotations

from kvmtune import __version__
from kvmtune.cli_spec import COMMANDS, COMPLETION, EFFECTS, ROOT, VERSION, Opt
from kvmtune.errors import EXIT_MEANINGS
from kvmtune.render.help_text import PROGRAM, option_text


def _text(s: str) -> str:
    """Prose as roff: escape backslashes, keep a line from starting a request."""
    s = s.replace("\\", "\\e")
    return "\\&" + s if s.startswith((".", "'")) else s


def _literal(s: str) -> str:
    """Option names and commands: hyphens are real minus signs, so they can be copied."""
    return _text(s).replace("-", "\\-")


def _option(head: Opt | str, metavar: str | None, text: str) -> list[str]:
    names = head if isinstance(head, str) else ", ".join(head.names)
    label = f"\\fB{_literal(names)}\\fR" + (f" \\fI{metavar}\\fR" if metavar else "")
    return [".TP", label, _text(text)]


def man_page() -> str:
    lines = [f'.TH KVMTUNE 1 "" "kvmtune {__version__}" "User Commands"',
             ".SH NAME", "kvmtune \\- " + _text(PROGRAM[0].lower() + PROGRAM[1:].rstrip(".")),
             ".SH SYNOPSIS", ".B kvmtune", "[\\fB\\-\\-root\\fR \\fIDIR\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
             ".SH DESCRIPTION", _text(PROGRAM),
             "Where /dev/kvm exists, check proves it by running guest code through the KVM ioctls.",
             ".SH GLOBAL OPTIONS"]
    lines += _option(ROOT, ROOT.metavar, ROOT.help)
    lines += _option(VERSION, None, "Print kvmtune's version and exit.")
    for name, text in COMPLETION:
        lines += _option(name, None, text)
    lines.append(".SH COMMANDS")
    for cmd in COMMANDS.values():
        from kvmtune.cli_parse import _load

        defaults = _load(cmd.options_class)()
        usage = f"\\fBkvmtune {_literal(cmd.name)}\\fR [\\fIOPTIONS\\fR]"
        if cmd.positional:
            arg = f"\\fI{cmd.positional[1]}\\fR"
            usage += f" [{arg}]" if cmd.positional[0].endswith("?") else f" {arg}"
        lines += [".SS " + _literal(cmd.name), usage, ".PP", _text(cmd.help), _text(EFFECTS[cmd.effect])]
        if cmd.positional:
            lines += [".TP", f"\\fI{cmd.positional[1]}\\fR", _text(cmd.positional[2])]
        for opt in cmd.options:
            lines += _option(opt, opt.metavar if opt.kind != "flag" else None, option_text(cmd, opt, defaults))
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_MEANINGS.items():
        lines += [".TP", f"\\fB{code}\\fR", _text(meaning)]
    lines += [".SH ENVIRONMENT", ".TP", "\\fBKVMTUNE_DEBUG\\fR=1", "Show the traceback of an internal error.",
              ".SH FILES",
              ".TP", "/var/lib/kvmtune/state.json",
              "The journal: every value and file kvmtune changed, with what was there before, for rollback.",
              ".TP", "/run/lock/kvmtune.lock", "Held by apply and rollback from reading the state to the last write.",
              ".TP", "DIR/kvmtune\\-snapshot.json",
              "A snapshot's manifest: what was captured, what could not be read and why, version and time.",
              ".SH SEE ALSO", "\\fBvirt\\-host\\-validate\\fR(1), \\fBtuned\\-adm\\fR(8), \\fBnumastat\\fR(8)"]
    return "\n".join(lines) + "\n"
