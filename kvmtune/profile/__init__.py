"""Profiles: find them (shipped name or path), load them, resolve ``extends``, validate."""

from __future__ import annotations

import os

from kvmtune.profile.model import Profile
from kvmtune.profile.source import Node, ProfileError, parse_yaml

MAX_DEPTH = 16
MAX_SIZE = 1 << 20  # 1 MiB: the shipped profiles are 2 KiB


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
    from kvmtune.errors import UsageError, quoted

    if os.sep in ref or ref.endswith((".yaml", ".yml")):
        path = ref if os.path.isabs(ref) or relative_to is None else os.path.join(os.path.dirname(relative_to), ref)
        if not os.path.exists(path):
            raise UsageError(f"profile {quoted(ref)}: no such file")
        return os.path.abspath(path)
    shipped = shipped_profiles()
    if ref in shipped:
        return shipped[ref]
    if os.path.isfile(ref):
        return os.path.abspath(ref)
    raise UsageError(f"profile {quoted(ref)}: not a file and not a shipped profile "
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

    root = parse_yaml(text, file, top_problem)
    merged, chain = _resolve_extends(root, file, ())
    return validate(merged, "inline", chain + (file,))


def _read(path: str) -> str:
    """A profile's text: a regular file (a FIFO would block), at most MAX_SIZE, UTF-8."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ProfileError(path, None, None, "", "not a regular file: a profile is a YAML file")
            if st.st_size > MAX_SIZE:
                raise ProfileError(path, None, None, "", f"larger than the 1 MiB a profile may be ({st.st_size} bytes)")
            data = os.read(fd, MAX_SIZE + 1)
        finally:
            os.close(fd)
        if len(data) > MAX_SIZE:
            raise ProfileError(path, None, None, "", "larger than the 1 MiB a profile may be")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(path, None, None, "", "not UTF-8 text: not a profile") from None
    except OSError as exc:
        raise ProfileError(path, None, None, "", f"cannot read: {exc.strerror or exc}") from None


def _load_chain(path: str, stack: tuple) -> tuple[Node, tuple]:
    if path in stack:
        cycle = " -> ".join(os.path.basename(p) for p in stack + (path,))
        raise ProfileError(stack[-1], None, None, "extends", f"extends loop: {cycle}")
    root = parse_yaml(_read(path), path, top_problem)
    merged, chain = _resolve_extends(root, path, stack + (path,))
    return merged, chain + (path,)


def top_problem(keys: list | None) -> str | None:
    """Why a YAML file is not a profile, judged on its top-level keys alone (None: not a mapping)."""
    from kvmtune.profile.schema import TOP_KEYS

    if keys is None or (keys and not any(_near(k, TOP_KEYS) for k in keys)):
        # Named, never quoted: it may be any file (extends: /etc/shadow).
        return f"not a profile: a profile is a YAML mapping of sections ({', '.join(TOP_KEYS)})"
    return None


def _resolve_extends(root: Node, path: str, stack: tuple) -> tuple[Node, tuple]:
    ext = root.value.get("extends")
    if ext is None:
        return root, ()
    if not isinstance(ext.value, str) or not ext.value:
        raise ext.error("expected the name or path of a profile")
    if len(stack) >= MAX_DEPTH:
        raise ext.error(f"extends deeper than {MAX_DEPTH} profiles")
    from kvmtune.errors import UsageError

    try:
        parent_path = resolve(ext.value, relative_to=path if os.path.isfile(path) else None)
    except UsageError as exc:
        raise ext.error(str(exc)) from None
    try:
        parent, chain = _load_chain(parent_path, stack)
    except ProfileError as exc:
        if exc.file == parent_path and exc.line is None:  # the file as a whole: say where it was named
            raise ext.error(f"{parent_path}: {exc.reason}") from None
        raise
    return merge(parent, root), chain


def _near(key: str, known) -> bool:
    """A known section, or a typo of one (which deserves "did you mean")."""
    import difflib

    return key in known or bool(difflib.get_close_matches(key, list(known), n=1))


def merge(base: Node, child: Node) -> Node:
    """The child wins key by key; hugetlbfs mounts merge by path."""
    if not (base.is_mapping and child.is_mapping):
        return child
    out = dict(base.value)
    for key, node in child.value.items():
        if key == "extends":
            continue
        if child.path == "sysctl":  # -vm.swappiness is vm.swappiness, optional: the child's spelling wins
            out.pop(key[1:] if key.startswith("-") else "-" + key, None)
        if child.path == "ksm" and key in ("policy", "run"):  # a fixed run and a policy replace each other
            for gone in (("run",) if key == "policy" else ("policy", "threshold", "hysteresis")):
                out.pop(gone, None)
            if "pages_to_scan" in out and out["pages_to_scan"].is_mapping == (key == "run"):
                out.pop("pages_to_scan")  # a fixed number or the policy's bounds: the other kind
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
