"""Parse a command line against kvmtune.cli_spec: the fast path, and the meaning both paths share.

typer (which imports pydantic) takes about 100 ms to import here, more than all of
``check``; so a plain command line is parsed here, from the same table typer's app is
built from. Anything this parser does not fully understand (``-o=F``, bundled short
flags, a missing value, ``--help``) goes to typer, which means the same by construction:
both hand their (option, value) pairs to ``build``.
"""

from __future__ import annotations

from kvmtune.cli_spec import COMMANDS, NO_ROOT, Cmd, Opt
from kvmtune.errors import UsageError


def hoist_root(argv: list[str]) -> list[str] | None:
    """``--root DIR`` may stand before or after the command; move it to the front (it is
    declared once, on the program). None: a ``--root`` without its value (typer says so)."""
    out, roots = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out += argv[i:]
            break
        if arg == "--root":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            roots += ["--root", argv[i + 1]]
            i += 2
            continue
        if arg.startswith("--root="):
            roots += ["--root", arg[len("--root="):]]
        else:
            out.append(arg)
        i += 1
    return roots[-2:] + out


def _load(ref: str):
    """``module:name`` -> the object (__import__: importlib's package imports warnings)."""
    module, _, name = ref.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def build(cmd: Cmd, settings: list[tuple[Opt, object]], words: list[str], root: str | None):
    """The command's Options from what was given; UsageError for contradictions and bad choices."""
    opts = _load(cmd.options_class)()
    for field, value in cmd.fixed.items():
        setattr(opts, field, value)
    if root is not None:
        if not cmd.takes_root:
            raise UsageError(f"--root: '{cmd.name}' {NO_ROOT[cmd.effect]}")
        opts.root = root
    set_by: dict[str, tuple[Opt, object]] = {}
    for opt, value in settings:
        if opt.choices and value not in opt.choices:
            raise UsageError(f"{opt.names[-1]}: expected one of {', '.join(opt.choices)}, got {value!r}")
        if opt.kind == "list":
            getattr(opts, opt.field).append(value)
            continue
        earlier = set_by.get(opt.field)
        if earlier and earlier[0] is not opt and earlier[1] != value:
            raise UsageError(f"{_shown(*earlier)} and {_shown(opt, value)} contradict each other")
        set_by[opt.field] = (opt, value)
        setattr(opts, opt.field, value)
    if cmd.positional:
        field = cmd.positional[0]
        if field.endswith("*"):
            setattr(opts, field[:-1], list(words))
        elif words:
            setattr(opts, field.rstrip("?"), words[0])
    return opts


def asks_json(opt: Opt, value) -> bool:
    """Whether this option, given this value, asks for JSON output (--json, --format json)."""
    return (opt.field == "json" and value is True) or (opt.field == "format" and value == "json")


def json_requested(argv: list[str]) -> bool:
    """Whether a command line asks for JSON, read before (or without) parsing it whole: a usage
    error on a --json command line must still print one JSON object."""
    args = hoist_root(list(argv)) or list(argv)
    if args[:1] == ["--root"]:
        args = args[2:]
    cmd = COMMANDS.get(args[0]) if args else None
    if cmd is None:
        return False
    for i, arg in enumerate(args[1:], 1):
        name, eq, inline = arg.partition("=")
        opt = cmd.option(name)
        if opt is None:
            continue
        value = opt.value if opt.kind == "flag" else inline if eq else args[i + 1] if i + 1 < len(args) else None
        if asks_json(opt, value):
            return True
    return False


def _shown(opt: Opt, value) -> str:
    return opt.names[-1] if opt.kind == "flag" else f"{opt.names[-1]} {value}"


def fast_options(argv: list[str]):
    """(command, options) for a plain command line, else None (typer decides)."""
    args = hoist_root(list(argv))
    if args is None:
        return None
    root = None
    if args[:1] == ["--root"]:
        root, args = args[1], args[2:]
    if not args or args[0] not in COMMANDS:
        return None
    cmd = COMMANDS[args.pop(0)]
    settings: list[tuple[Opt, object]] = []
    words: list[str] = []
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg == "-":
            words.append(arg)
            continue
        name, eq, inline = arg.partition("=")
        opt = cmd.option(name)
        if opt is None or (eq and not name.startswith("--")):
            return None  # unknown, --help, or a short option with "=": typer's to judge
        if opt.kind == "flag":
            if eq:
                return None
            settings.append((opt, opt.value))
            continue
        if not eq:
            if not args or args[0].startswith("-"):
                return None
            inline = args.pop(0)
        settings.append((opt, inline))
    if not _arity_ok(cmd, words):
        return None
    return cmd.name, build(cmd, settings, words, root)


def _arity_ok(cmd: Cmd, words: list[str]) -> bool:
    if cmd.positional is None:
        return not words
    if cmd.positional[0].endswith("*"):
        return len(words) >= 1
    if cmd.positional[0].endswith("?"):
        return len(words) <= 1
    return len(words) == 1
