"""Profiles: find them (shipped name or path), load them, resolve ``extends``, validate."""

from __future__ import annotations

import os

from kvmtune.profile.model import Profile
from kvmtune.profile.source import Node, ProfileError, parse_yaml

MAX_DEPTH = 16


def profile_dirs() -> list[str]:
    """Where shipped profiles live: in the installed package, or beside a source checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [d for d in (os.path.join(here, "profiles"), os.path.join(os.path.dirname(here), "profiles"))
            if os.path.isdir(d)]


def shipped_profiles() -> dict[str, str]:
    """name -> file of every shipped profile."""
    out: dict[str, str] = {}
    for d in profile_dirs():
        for entry in sorted(os.listdir(d)):
            if entry.endswith(".yaml"):
                out.setdefault(entry[:-5], os.path.join(d, entry))
    return out


def resolve(ref: str, relative_to: str | None = None) -> str:
    """A profile reference (shipped name or path) -> a file path; UsageError if none."""
    from kvmtune.errors import UsageError

    if os.sep in ref or ref.endswith((".yaml", ".yml")):
        path = ref if os.path.isabs(ref) or relative_to is None else os.path.join(os.path.dirname(relative_to), ref)
        if not os.path.isfile(path):
            raise UsageError(f"profile {ref}: no such file")
        return os.path.abspath(path)
    shipped = shipped_profiles()
    if ref in shipped:
        return shipped[ref]
    if os.path.isfile(ref):
        return os.path.abspath(ref)
    raise UsageError(f"profile '{ref}': not a file and not a shipped profile "
                     f"({', '.join(shipped) or 'none found'})")


def load_profile(ref: str) -> Profile:
    from kvmtune.profile.schema import validate

    path = resolve(ref)
    merged, chain = _load_chain(path, ())
    name = ref if os.sep not in ref and not ref.endswith((".yaml", ".yml")) else os.path.basename(path).rsplit(".", 1)[0]
    return validate(merged, name, chain)


def load_profile_text(text: str, file: str = "<inline>") -> Profile:
    """A profile given as text (the Ansible module's inline dict arrives as YAML)."""
    from kvmtune.profile.schema import validate

    root = parse_yaml(text, file)
    merged, chain = _resolve_extends(root, file, ())
    return validate(merged, "inline", chain + (file,))


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(path, None, None, "", f"cannot read: {getattr(exc, 'strerror', None) or exc}") from None


def _load_chain(path: str, stack: tuple) -> tuple[Node, tuple]:
    if path in stack:
        cycle = " -> ".join(os.path.basename(p) for p in stack + (path,))
        raise ProfileError(stack[-1], None, None, "extends", f"extends loop: {cycle}")
    if len(stack) >= MAX_DEPTH:
        raise ProfileError(path, None, None, "extends", f"extends deeper than {MAX_DEPTH} profiles")
    root = parse_yaml(_read(path), path)
    merged, chain = _resolve_extends(root, path, stack + (path,))
    return merged, chain + (path,)


def _resolve_extends(root: Node, path: str, stack: tuple) -> tuple[Node, tuple]:
    if not root.is_mapping:
        raise root.error("a profile is a mapping of sections (sysctl, hugepages, hugetlbfs, ksm, thp)")
    ext = root.value.get("extends")
    if ext is None:
        return root, ()
    if not isinstance(ext.value, str) or not ext.value:
        raise ext.error("expected the name or path of a profile")
    from kvmtune.errors import UsageError

    try:
        parent_path = resolve(ext.value, relative_to=path if os.path.isfile(path) else None)
    except UsageError as exc:
        raise ext.error(str(exc)) from None
    parent, chain = _load_chain(parent_path, stack)
    return merge(parent, root), chain


def merge(base: Node, child: Node) -> Node:
    """The child wins key by key; hugetlbfs mounts merge by path."""
    if not (base.is_mapping and child.is_mapping):
        return child
    out = dict(base.value)
    for key, node in child.value.items():
        if key == "extends":
            continue
        if key == "hugetlbfs" and key in out and out[key].is_list and node.is_list:
            out[key] = _merge_mounts(out[key], node)
        elif key in out and out[key].is_mapping and node.is_mapping and key != "per_node":
            out[key] = merge(out[key], node)
        else:
            out[key] = node
    return Node(out, child.file, child.line, child.column, child.path, child.tag)


def _merge_mounts(base: Node, child: Node) -> Node:
    def path_of(item: Node):
        return item.value.get("path").value if item.is_mapping and "path" in item.value else None

    items = {path_of(i) or id(i): i for i in base.value}
    for item in child.value:
        items[path_of(item) or id(item)] = item
    return Node(list(items.values()), child.file, child.line, child.column, child.path, child.tag)
