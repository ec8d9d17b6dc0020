"""The whole state of a directory tree, for "tree untouched" and "restored exactly" assertions.

Every entry below the root (the root itself included) with its kind, content or link
target, mode, owner and extended attributes: what a byte-identical rollback must restore.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat


def _xattrs(path: str) -> tuple:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for name in sorted(names):
        try:
            out.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(out)


def entry(path: str):
    st = os.lstat(path)
    meta = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, _xattrs(path))
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path)) + meta
    if stat.S_ISDIR(st.st_mode):
        return ("dir",) + meta
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            return ("file", f.read()) + meta
    return ("other", stat.S_IFMT(st.st_mode)) + meta


def tree_state(root) -> dict:
    """{relative path: entry} for every entry, links not followed."""
    root = str(root)
    out = {".": entry(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out[os.path.relpath(p, root)] = entry(p)
    return out


def tree_hash(root) -> str:
    return hashlib.sha256(repr(sorted(tree_state(root).items())).encode()).hexdigest()


def tree_diff(before: dict, after: dict, limit: int = 12) -> list[str]:
    """What changed, for assertion messages."""
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            what = "added" if key not in before else "removed" if key not in after else "changed"
            out.append(f"{what}: {key}")
    return out[:limit]


def fresh(template_root, tmp_path, name="host") -> str:
    """A new copy of a template tree at tmp_path/name (replacing the last one), to kill a run in."""
    dest = tmp_path / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(template_root, dest, symlinks=True)
    return str(dest)
