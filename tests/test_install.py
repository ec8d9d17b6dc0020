"""The installed package, run from outside the checkout: what a user of the README gets."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("kvmtune")


def test_every_package_and_data_file_is_declared():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "kvmtune").rglob("__init__.py")}
    assert on_disk <= declared, f"not in pyproject packages: {sorted(on_disk - declared)}"
    data = [p.relative_to(REPO) for p in (REPO / "kvmtune").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    undeclared = []
    for path in data:
        package = ".".join(path.parent.parts)  # a data directory is a package of its own
        patterns = config["package-data"].get(package, [])
        if package not in declared or not any(path.match(pattern) for pattern in patterns):
            undeclared.append(str(path))
    assert not undeclared, f"not declared as package data: {undeclared}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="kvmtune is not installed next to this Python")
@pytest.mark.parametrize("argv", [["check", "--json"], ["cpu-models", "--json"], ["profiles", "--json"],
                                  ["plan", "kvm-host", "--json", "--no-persist"]])
def test_installed_console_script_works_outside_the_checkout(argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    json.loads(proc.stdout)


def _source_files() -> list[str]:
    """The files a release is made from: git's list in a checkout, else everything here."""
    if (REPO / ".git").exists():
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        return [f for f in out.split("\0") if f]
    skip = {".git", ".venv", "build", "dist", ".pytest_cache", ".hypothesis", ".ruff_cache", "__pycache__"}
    return [str(p.relative_to(REPO)) for p in REPO.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO).parts) and ".egg-info" not in str(p)]


@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="the 'build' package is not installed")
def test_the_sdist_holds_what_its_tests_need_and_they_pass_from_it(tmp_path):
    source = tmp_path / "source"
    for name in _source_files():
        src = REPO / name
        if src.is_symlink():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).symlink_to(os.readlink(src))
        elif src.is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, source / name)
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode and "No matching distribution" in proc.stdout + proc.stderr:
        pytest.skip("build could not fetch setuptools: no package index reachable")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    warnings = [l for l in (proc.stdout + proc.stderr).splitlines()
                if "Deprecat" in l or "would be ignored" in l or "Warning" in l]
    assert not warnings, warnings
    (sdist,) = (tmp_path / "dist").glob("kvmtune-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    missing = [f for f in _source_files() if f != ".gitignore" and not (unpacked / f).exists()]
    assert not missing, f"left out of the sdist: {missing}"
    assert "Apache License" in (unpacked / "LICENSE").read_text()[:200]
    # the tests that lean on fixtures, golden files, examples, the collection and reference data
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not live",
                          "tests/test_golden.py", "tests/test_cpu_models.py", "tests/test_fleet.py",
                          "tests/test_snapshot.py", "tests/test_checks.py", "tests/test_structure.py"],
                         cwd=unpacked, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " skipped" not in run.stdout.splitlines()[-1], run.stdout[-2000:]
