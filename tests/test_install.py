"""The installed package, run from outside the checkout: what a user of the README gets."""

import json
import os
import subprocess
import sys
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
    patterns = config["package-data"]["kvmtune"]
    data = [p.relative_to(REPO / "kvmtune") for p in (REPO / "kvmtune").rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    undeclared = [str(d) for d in data if not any(d.match(pat) for pat in patterns)]
    assert not undeclared, f"not in package-data: {undeclared}"


@pytest.mark.skipif(not SCRIPT.exists(), reason="kvmtune is not installed next to this Python")
@pytest.mark.parametrize("argv", [["check", "--json"], ["cpu-models", "--json"], ["profiles", "--json"],
                                  ["plan", "kvm-host", "--json", "--no-persist"]])
def test_installed_console_script_works_outside_the_checkout(argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    json.loads(proc.stdout)
