"""YAML with positions: every value keeps the file, line and column it came from.

pyyaml's safe composer gives nodes with marks; we walk them ourselves so that
every validation error can name file:line:column and the key path, and so that
duplicate keys (silently "last wins" in pyyaml) are an error.
"""

from __future__ import annotations

import re

from kvmtune.errors import UsageError, printable, quoted


class ProfileError(UsageError):
    """Invalid profile: nothing on the host was touched."""

    def __init__(self, file: str, line: int | None, column: int | None, path: str, message: str):
        where = file if line is None else f"{file}:{line}:{column}"
        # A key path is the profile's own text: shown with control characters escaped, never raw.
        path = printable(path if len(path) <= 120 else path[:117] + "...")
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")
        self.file, self.line, self.column, self.path, self.reason = file, line, column, path, message


class Node:
    """A YAML value: scalar (value is the Python value), mapping (dict of Node) or list."""

    __slots__ = ("value", "file", "line", "column", "path", "tag", "key_line", "key_column")

    def __init__(self, value, file: str, line: int, column: int, path: str, tag: str,
                 key_at: tuple[int, int] | None = None):
        self.value = value
        self.file, self.line, self.column, self.path, self.tag = file, line, column, path, tag
        # Where this value's key is written, for errors about the key itself.
        self.key_line, self.key_column = key_at or (line, column)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def error(self, message: str, path: str | None = None) -> ProfileError:
        return ProfileError(self.file, self.line, self.column, self.path if path is None else path, message)

    def key_error(self, message: str) -> ProfileError:
        return ProfileError(self.file, self.key_line, self.key_column, self.path, message)

    def plain(self):
        """The value with positions stripped."""
        if self.is_mapping:
            return {k: v.plain() for k, v in self.value.items()}
        if self.is_list:
            return [v.plain() for v in self.value]
        return self.value


MAX_NESTING = 32  # a profile is four levels deep; anything far deeper is not one
STR, MERGE = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"
AMBIGUOUS, TAGGED = "tag:kvmtune:ambiguous", "tag:kvmtune:tagged"
# The plain scalars a profile may write, and what they mean: the forms YAML 1.1 and 1.2 agree on.
# [0-9] and not \d: a Unicode digit is not a digit here. Everything else plain is text, unless
# some YAML reader would take it for something else (below): then it is refused, never guessed.
PLAIN = (
    ("tag:yaml.org,2002:bool", re.compile(r"true|True|TRUE|false|False|FALSE")),
    ("tag:yaml.org,2002:null", re.compile(r"~|null|Null|NULL|")),
    ("tag:yaml.org,2002:int", re.compile(r"[-+]?(?:0|[1-9][0-9]*)")),
    ("tag:yaml.org,2002:float", re.compile(r"[-+]?(?:0|[1-9][0-9]*)\.[0-9]+")),
)
# YAML 1.2 core schema forms that YAML 1.1 (pyyaml) reads as text: 0o17, 1e3, .5 ...
YAML12_NOT_TEXT = re.compile(r"0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                             r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
# What to write instead, by what YAML 1.1 would have made of the plain scalar.
AMBIGUOUS_HINT = {
    "tag:yaml.org,2002:bool": "is true or false in YAML 1.1 and a word in YAML 1.2: write true or false, "
                              "write 1 or 0 for a number, or quote it for the word",
    "tag:yaml.org,2002:int": "is read as a different number by YAML 1.1 (0777 as 511, 1_000 as 1000, 1:30 as 90) "
                             "than by YAML 1.2: write a plain decimal number, or quote it for text",
    "tag:yaml.org,2002:float": "is not a plain decimal number (YAML readers disagree on it): write a decimal "
                               "number such as 12.5, or quote it for text",
    "tag:yaml.org,2002:timestamp": "is a date in YAML 1.1: quote it for text",
    "tag:yaml.org,2002:value": "is the YAML 1.1 value key: quote it for text",
    MERGE: "merge keys (<<) are not allowed: write every key out",
    TAGGED: "YAML tags (!!int, !!binary, ...) are not allowed: write the value plainly, or quote it for text",
}
ALLOWED_TAGS = (None, "!", STR, "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _NotData(Exception):
    """YAML that parses but is not plain data (an alias, a tag, runaway nesting)."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.mark = mark


def _loader(yaml):
    yaml11 = yaml.resolver.Resolver()

    class PlainDataLoader(yaml.SafeLoader):
        """SafeLoader's composer, refusing aliases (a billion laughs expands from a few
        hundred bytes), tags (!!binary, !!int "0x10": a value says what it means by itself)
        and nesting deeper than MAX_NESTING (it would exhaust the stack); its resolver
        gives only the plain scalars listed in PLAIN."""

        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise _NotData("aliases (*name) are not allowed: write every value out", self.peek_event().start_mark)
            tagged = getattr(self.peek_event(), "tag", None) not in ALLOWED_TAGS
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise _NotData(f"nested deeper than {MAX_NESTING} levels: not a profile", self.peek_event().start_mark)
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            if tagged:  # refused where the key path is known (_convert)
                node.tag = TAGGED
            return node

        def resolve(self, kind, value, implicit):
            if kind is not yaml.ScalarNode or not implicit[0]:
                return super().resolve(kind, value, implicit)  # quoted: text; collections: map, seq
            for tag, pattern in PLAIN:
                if pattern.fullmatch(value):
                    return tag
            yaml11_tag = yaml11.resolve(kind, value, implicit)
            if yaml11_tag == MERGE:
                return MERGE
            if yaml11_tag != STR or YAML12_NOT_TEXT.fullmatch(value):
                return AMBIGUOUS
            return STR

    return PlainDataLoader, yaml11


def parse_yaml(text: str, file: str, top_problem=None) -> Node:
    """The YAML ``text`` as Nodes. ``top_problem(keys or None)`` judges the top-level keys (None:
    not a mapping) before any value is looked at, so a file that is not a profile is refused
    without quoting any of it."""
    import yaml

    loader, yaml11 = _loader(yaml)
    try:
        root = yaml.compose(text, Loader=loader)
    except _NotData as exc:
        raise ProfileError(file, exc.mark.line + 1, exc.mark.column + 1, "", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ProfileError(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                           "", f"YAML syntax error: {problem}") from None
    if root is None:
        return Node({}, file, 1, 1, "", "tag:yaml.org,2002:map")
    # A merge key names nothing: a file holding only merges is judged by what they merge (refused).
    problem = top_problem and top_problem([k.value for k, _ in root.value if isinstance(k, yaml.ScalarNode)
                                           and k.tag != MERGE] if isinstance(root, yaml.MappingNode) else None)
    if problem:
        raise ProfileError(file, None, None, "", problem)
    # A loader only to construct scalars from the composed nodes (int, bool, null...).
    return _convert(root, file, "", yaml, (yaml.SafeLoader(""), yaml11))


def _refuse_ambiguous(node, file: str, path: str, resolver) -> None:
    """A tag, a merge key, or a plain scalar YAML readers disagree on: refused where it stands."""
    if node.tag in (TAGGED, MERGE):
        raise ProfileError(file, node.start_mark.line + 1, node.start_mark.column + 1, path, AMBIGUOUS_HINT[node.tag])
    if isinstance(node.value, str) and node.style != "|" and node.start_mark.line != node.end_mark.line:
        # YAML folds a quoted or plain scalar's line breaks into spaces: 'two<newline>lines'
        # would become "two lines", a value the file never spelled. Only a literal block
        # (|) keeps its lines as written.
        raise ProfileError(file, node.start_mark.line + 1, node.start_mark.column + 1, path,
                           "a value spanning lines is folded by YAML: write it on one line")
    if node.tag == AMBIGUOUS:
        tag = resolver.resolve(type(node), node.value, (True, False))
        hint = AMBIGUOUS_HINT.get(tag, AMBIGUOUS_HINT["tag:yaml.org,2002:float"])
        raise ProfileError(file, node.start_mark.line + 1, node.start_mark.column + 1, path,
                           f"{quoted(node.value, 40)} {hint}")


def _convert(node, file: str, path: str, yaml, loaders) -> Node:
    loader, yaml11 = loaders
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    _refuse_ambiguous(node, file, path, yaml11)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ProfileError(file, kline, kcol, path, "keys must be plain words")
            # A key is its text as written (per_node "0", "2M"), never a value made of it.
            key = key_node.value
            child = f"{path}.{key}" if path else key
            _refuse_ambiguous(key_node, file, child, yaml11)
            if key in out:
                raise ProfileError(file, kline, kcol, child, "duplicate key")
            out[key] = _convert(value_node, file, child, yaml, loaders)
            out[key].key_line, out[key].key_column = kline, kcol
        return Node(out, file, line, col, path, node.tag)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(v, file, f"{path}[{i}]", yaml, loaders) for i, v in enumerate(node.value)],
                    file, line, col, path, node.tag)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError:  # the message would quote the file: say where, not what
        raise ProfileError(file, line, col, path, "not a value a profile can hold") from None
    return Node(value, file, line, col, path, node.tag)
