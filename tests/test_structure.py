"""The host layer is the only way into the machine: guard it mechanically."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "kvmtune"
HOST_LAYER = PACKAGE / "host"  # the Host: paths, reads, live-only calls, writes, mounts; atomic files
PATH_LITERAL = re.compile(r"^/(proc|sys|dev|etc)(/[\w.@:+-]*)*$")
FILE_CALLS = {("os", n) for n in ("open", "listdir", "stat", "lstat", "scandir", "remove", "unlink",
                                  "rename", "replace", "mkdir", "makedirs", "rmdir", "access",
                                  "getxattr", "walk", "chmod", "chown")}
# By path, never by bare name: tune/files.py is not the host layer's atomic.py.
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if HOST_LAYER not in p.parents)
# Read files that are not the host inspected: the operator's profiles, collected results,
# and kvmtune's own shipped data.
INPUT_READERS = {"profile/__init__.py", "report.py", "bench/schema.py", "shipped.py"}


def _strings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


# Paths as data, not as reads: where a hugetlbfs mount may not go; what a mapping's name in
# smaps says its memory is; the hugetlbfs mount an operator is told to make; a mount source
# (/dev/nvme0n1p2 names a disk, resolved through Host).
PATH_DATA = {"grammar.py", "probe/guest_memory.py", "checks/guest_backing.py", "probe/pci_needs.py"}


@pytest.mark.parametrize("path", [p for p in MODULES if str(p.relative_to(PACKAGE)) not in PATH_DATA],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_absolute_host_paths_outside_the_host_layer(path):
    tree = ast.parse(path.read_text())
    bad = [(line, s) for line, s in _strings(tree) if PATH_LITERAL.match(s)]
    assert not bad, f"{path.name}: host paths must be relative and go through Host: {bad}"


@pytest.mark.parametrize("path", [p for p in MODULES if str(p.relative_to(PACKAGE)) not in INPUT_READERS],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_file_access_outside_the_host_layer(path):
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            bad.append((node.lineno, "open"))
        if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                and (func.value.id, func.attr) in FILE_CALLS):
            bad.append((node.lineno, f"{func.value.id}.{func.attr}"))
        if isinstance(func, ast.Attribute) and func.attr in ("read_text", "write_text", "open"):
            bad.append((node.lineno, func.attr))
    assert not bad, f"{path.name}: file access belongs in kvmtune/host/: {bad}"


def test_modules_stay_small():
    big = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not big, f"split these modules (one job each): {big}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_circles():
    """Imports between kvmtune's modules, at the top or inside functions (lazy imports are
    dependencies too), form no cycle."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kvmtune"):
                edges.add(node.module)
                edges.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("kvmtune"))
        graph[name] = edges
    graph = {k: {e for e in v if e in graph and e != k} for k, v in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, cycles[:3]


# The floor the host layer stands on: nothing of kvmtune's above it.
HOST_MAY_IMPORT = {"kvmtune.errors", "kvmtune.record", "kvmtune.grammar", "kvmtune.fastjson"}


@pytest.mark.parametrize("path", sorted(HOST_LAYER.rglob("*.py")), ids=lambda p: p.name)
def test_host_layer_imports_nothing_above_it(path):
    up = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kvmtune"):
            names = [node.module] if node.module != "kvmtune" else [f"kvmtune.{a.name}" for a in node.names]
            up.update(n for n in names if not n.startswith("kvmtune.host") and n not in HOST_MAY_IMPORT)
        elif isinstance(node, ast.Import):
            up.update(a.name for a in node.names if a.name.startswith("kvmtune") and not a.name.startswith("kvmtune.host"))
    assert not up, f"{path.name} reaches above the host layer: {sorted(up)}"


def test_digits_are_judged_in_ascii():
    """str.isdigit(), isnumeric() and isdecimal() say yes to '²' and '٣': every input's digits go
    through grammar.digits() or grammar.number() (test_check_hostile feeds them to each reader)."""
    bad = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "grammar.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("isdigit", "isnumeric", "isdecimal"):
                bad.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not bad, bad
