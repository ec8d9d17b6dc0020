"""YAML with positions: every value keeps the file, line and column it came from.

pyyaml's safe composer gives nodes with marks; we walk them ourselves so that
every validation error can name file:line:column and the key path, and so that
duplicate keys (silently "last wins" in pyyaml) are an error.
"""

from __future__ import annotations

from kvmtune.errors import UsageError


class ProfileError(UsageError):
    """Invalid profile: nothing on the host was touched."""

    def __init__(self, file: str, line: int | None, column: int | None, path: str, message: str):
        where = file if line is None else f"{file}:{line}:{column}"
        # A key path is the profile's own text: shown with control characters escaped, never raw.
        path = "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)
        path = path if len(path) <= 120 else path[:117] + "..."
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


class _NotData(Exception):
    """YAML that parses but is not plain data (an alias, runaway nesting)."""

    def __init__(self, message: str, mark):
        super().__init__(message)
        self.mark = mark


def _loader(yaml):
    class PlainDataLoader(yaml.SafeLoader):
        """SafeLoader's composer, refusing aliases (a billion laughs expands from a few
        hundred bytes) and nesting deeper than MAX_NESTING (it would exhaust the stack)."""

        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise _NotData("aliases (*name) are not allowed: write every value out", self.peek_event().start_mark)
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise _NotData(f"nested deeper than {MAX_NESTING} levels: not a profile", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return PlainDataLoader


def parse_yaml(text: str, file: str) -> Node:
    import yaml

    try:
        root = yaml.compose(text, Loader=_loader(yaml))
    except _NotData as exc:
        raise ProfileError(file, exc.mark.line + 1, exc.mark.column + 1, "", str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(file, mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                           "", f"YAML syntax error: {problem}") from None
    if root is None:
        return Node({}, file, 1, 1, "", "tag:yaml.org,2002:map")
    # A loader only to construct scalars from the composed nodes (int, bool, null...).
    return _convert(root, file, "", yaml, yaml.SafeLoader(""))


def _convert(node, file: str, path: str, yaml, loader) -> Node:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise ProfileError(file, kline, kcol, path, "keys must be plain words")
            key = str(loader.construct_object(key_node))
            child = f"{path}.{key}" if path else key
            if key in out:
                raise ProfileError(file, kline, kcol, child, "duplicate key")
            out[key] = _convert(value_node, file, child, yaml, loader)
            out[key].key_line, out[key].key_column = kline, kcol
        return Node(out, file, line, col, path, node.tag)
    if isinstance(node, yaml.SequenceNode):
        return Node([_convert(v, file, f"{path}[{i}]", yaml, loader) for i, v in enumerate(node.value)],
                    file, line, col, path, node.tag)
    try:
        value = loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise ProfileError(file, line, col, path, f"bad value: {exc}") from None
    return Node(value, file, line, col, path, node.tag)
