#!/usr/bin/env python3
"""Regenerate the list of sysctl names the kernel documents, from a kernel source tree.

    python scripts/make_sysctl_names.py KERNEL_TREE --source "REPO COMMIT (Linux X.Y.Z)" [--out kvmtune/data]

Reads Documentation/admin-guide/sysctl/*.rst (index.rst aside): each file documents one
directory of /proc/sys (vm.rst: /proc/sys/vm), each section heading names one or more of its
files (``msgmax, msgmnb, and msgmni``; ``file-max & file-nr``; ``bootloader_type (x86 only)``),
and a numbered heading that names a path (``1. /proc/sys/net/core - ...``) or a protocol
(``4. Appletalk``) moves the names below it into that directory.

Writes sysctl_documented.json: the names, dotted as in a profile (vm.swappiness), and where
they came from. kvmtune offers the ``-name`` mark (skip where the kernel lacks it) only for
these: a name that no kernel documents is a typo until shown otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

RULE = re.compile(r"([=\-~^])\1{2,}")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
PATH = re.compile(r"/proc/sys/([A-Za-z0-9_/-]+)")
NUMBERED = re.compile(r"\d+\.\s+(.*)")


def headings(text: str) -> list[str]:
    lines = text.split("\n")
    return [a.strip() for a, b in zip(lines, lines[1:])
            if a.strip() and a[:1] not in " \t" and RULE.fullmatch(b.strip()) and not RULE.fullmatch(a.strip())]


def names_in(heading: str) -> list[str]:
    """``msg_next_id, sem_next_id, and shm_next_id (System V IPC)`` -> the three names."""
    bare = re.sub(r"\([^)]*\)", "", heading).rstrip(": ")
    words = [w.strip().rstrip(":") for w in re.split(r",|&|\band\b", bare)]
    words = [w for w in words if w]
    return words if words and all(NAME.fullmatch(w) for w in words) else []


def documented(rst: str, directory: str) -> list[str]:
    """Dotted names documented by one file of Documentation/admin-guide/sysctl."""
    out = []
    prefix = directory
    for heading in headings(rst):
        path = PATH.search(heading)
        if heading.startswith("Documentation for"):
            continue
        if path:
            prefix = path.group(1).strip("/").replace("/", ".")
            continue
        numbered = NUMBERED.fullmatch(heading)
        if numbered:  # "4. Appletalk": /proc/sys/net/appletalk
            word = numbered.group(1).split()[0].lower()
            prefix = f"{directory}.{word}"
            continue
        out += [f"{prefix}.{name}" for name in names_in(heading)]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tree", help="a kernel source tree (holds Documentation/admin-guide/sysctl)")
    ap.add_argument("--source", required=True, help="where the tree came from: repository, commit, version")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kvmtune", "data"))
    args = ap.parse_args(argv)
    docs = os.path.join(args.tree, "Documentation", "admin-guide", "sysctl")
    names: set[str] = set()
    files = []
    for entry in sorted(os.listdir(docs)):
        if not entry.endswith(".rst") or entry == "index.rst":
            continue
        with open(os.path.join(docs, entry), encoding="utf-8") as fh:
            found = documented(fh.read(), entry[:-4])
        files.append(entry)
        names.update(found)
    out = {"source": args.source, "files": [f"Documentation/admin-guide/sysctl/{f}" for f in files],
           "names": sorted(names)}
    path = os.path.join(args.out, "sysctl_documented.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=0)
        fh.write("\n")
    print(f"{path}: {len(names)} names from {len(files)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
