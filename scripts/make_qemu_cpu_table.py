#!/usr/bin/env python3
"""Regenerate kvmtune's table of the x86 CPU models each QEMU release has.

    python scripts/make_qemu_cpu_table.py ORIGIN=SOURCE... [--out kvmtune/data/qemu_cpu_models.json]

SOURCE is a QEMU source tree (a git directory, read at HEAD or at SOURCE@REV, or an
unpacked release tarball); ORIGIN names where it came from (``qemu/qemu``, or the
repository that imported a release tarball). From each source it reads VERSION and
target/i386/cpu.c, and takes from cpu.c's ``builtin_x86_defs[]`` every name QEMU
registers for a model, as x86_register_cpudef_types() does: the model's own name,
``NAME-vN`` for each entry of its ``.versions`` (only ``-v1`` when it has none), and each
version's ``.alias``. ``host``, ``max`` and ``base`` are classes of their own, not models
of the table, and libvirt's map has none of them.

Each release records the commit and the git blob id of the cpu.c it was read from, so
anyone can check the table against upstream's tag (``git rev-parse vX.Y.Z:target/i386/cpu.c``).
Writes one JSON file: facts about QEMU (model names only; QEMU is GPL-2.0-or-later).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CPU_C = "target/i386/cpu.c"
ARRAY = re.compile(r"X86CPUDefinition\s+builtin_x86_defs\s*\[\s*\]\s*=\s*\{")
TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|//[^\n]*|[{}]', re.S)


def read_source(source: str) -> tuple[str, str, str | None, str]:
    """(VERSION, cpu.c text, commit or None, blob id of cpu.c) of a tree or git directory."""
    path, _, rev = source.partition("@")
    rev = rev or "HEAD"
    git = ["git", "-C", path]
    is_git = subprocess.run(git + ["rev-parse", "--git-dir"], capture_output=True).returncode == 0 \
        and not os.path.exists(os.path.join(path, CPU_C))
    if is_git:
        def show(name):
            return subprocess.run(git + ["show", f"{rev}:{name}"], capture_output=True, text=True, check=True).stdout
        commit = subprocess.run(git + ["rev-parse", f"{rev}^{{commit}}"], capture_output=True, text=True,
                                check=True).stdout.strip()
        blob = subprocess.run(git + ["rev-parse", f"{rev}:{CPU_C}"], capture_output=True, text=True,
                              check=True).stdout.strip()
        return show("VERSION").strip(), show(CPU_C), commit, blob
    with open(os.path.join(path, "VERSION"), encoding="utf-8") as f:
        version = f.read().strip()
    with open(os.path.join(path, CPU_C), encoding="utf-8") as f:
        text = f.read()
    blob = subprocess.run(["git", "hash-object", os.path.join(path, CPU_C)], capture_output=True, text=True,
                          check=True).stdout.strip()
    return version, text, None, blob


def entries(text: str) -> list[str]:
    """The text of each top-level ``{...}`` entry of builtin_x86_defs[], comments removed."""
    start = ARRAY.search(text)
    if start is None:
        raise ValueError(f"{CPU_C}: no builtin_x86_defs[] array")
    # Comments out, strings kept: a brace inside either must not count.
    body = TOKENS.sub(lambda m: "" if m.group().startswith(("/*", "//")) else m.group(), text[start.end():])
    depth, begin, out = 1, 0, []
    for token in TOKENS.finditer(body):
        if token.group() == "{":
            depth += 1
            if depth == 2:
                begin = token.start()
        elif token.group() == "}":
            depth -= 1
            if depth == 1:
                out.append(body[begin:token.end()])
            elif depth == 0:
                return out
    raise ValueError(f"{CPU_C}: builtin_x86_defs[] is not closed")


def names_of(entry: str) -> list[str]:
    """The names QEMU registers for one model entry."""
    head = entry.split(".versions", 1)
    name = re.search(r'\.name\s*=\s*"([^"]+)"', head[0])
    if name is None:
        raise ValueError(f"a builtin_x86_defs entry without .name: {entry[:80]!r}")
    out = [name.group(1)]
    if len(head) == 1:
        return out + [f"{out[0]}-v1"]
    versions = re.findall(r"\.version\s*=\s*(\d+)", head[1])
    if not versions:
        raise ValueError(f"{out[0]}: .versions lists no .version")
    out += [f"{out[0]}-v{v}" for v in versions]
    out += re.findall(r'\.alias\s*=\s*"([^"]+)"', head[1])
    return out


def release_entry(origin: str, source: str) -> dict:
    version, text, commit, blob = read_source(source)
    models = sorted({n for e in entries(text) for n in names_of(e)}, key=str.lower)
    return {"release": version, "series": ".".join(version.split(".")[:2]), "origin": origin,
            "commit": commit, "cpu_c_blob": blob, "models": models}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="ORIGIN=SOURCE")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "kvmtune", "data",
                                                      "qemu_cpu_models.json"))
    args = parser.parse_args()
    releases = []
    for arg in args.sources:
        origin, sep, source = arg.partition("=")
        if not sep:
            parser.error(f"{arg}: expected ORIGIN=SOURCE")
        releases.append(release_entry(origin, source))
    releases.sort(key=lambda r: tuple(int(p) for p in r["release"].split(".")[:3] if p.isdigit()))
    series = [r["series"] for r in releases]
    if len(set(series)) != len(series):
        parser.error(f"one source per release series, got {series}")
    for older, newer in zip(releases, releases[1:]):
        # kvmtune reads an untabulated series between two tables as "has what both have":
        # that holds only while QEMU never drops a model name, so check it here.
        dropped = set(older["models"]) - set(newer["models"])
        if dropped:
            print(f"warning: {newer['release']} lacks {sorted(dropped)} that {older['release']} has",
                  file=sys.stderr)
    out = {"schema": 1, "source": {"path": CPU_C, "array": "builtin_x86_defs", "license": "GPL-2.0-or-later",
                                   "note": "model names only"},
           "releases": releases}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(", ".join(f"{r['release']}: {len(r['models'])} names" for r in releases) + f" -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
