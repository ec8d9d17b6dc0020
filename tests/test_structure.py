"""The host layer is the only way into the machine: guard it mechanically."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "kvmtune"
HOST_LAYER = {"host.py", "host_changes.py", "host_mounts.py", "files.py"}  # the Host, its writes, atomic files
PATH_LITERAL = re.compile(r"^/(proc|sys|dev|etc)(/[\w.@:+-]*)*$")
FILE_CALLS = {("os", n) for n in ("open", "listdir", "stat", "lstat", "scandir", "remove", "unlink",
                                  "rename", "replace", "mkdir", "makedirs", "rmdir", "access",
                                  "getxattr", "walk", "chmod", "chown")}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in HOST_LAYER)
# Read files that are not the host inspected: the operator's profiles, collected results,
# and kvmtune's own shipped data.
INPUT_READERS = {"profile/__init__.py", "report.py", "cpumodels/table.py"}


def _strings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


# Paths as data, not as reads: where a hugetlbfs mount may not go.
PATH_DATA = {"grammar.py"}


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
    assert not bad, f"{path.name}: file access belongs in kvmtune/host.py: {bad}"


def test_modules_stay_small():
    big = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not big, f"split these modules (one job each): {big}"
