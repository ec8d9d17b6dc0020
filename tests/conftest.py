"""Shared fixtures: captured host dumps, synthetic hosts, and running the CLI in-process."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.fixtures.synthetic import SYNTHETIC, write_tree

HERE = Path(__file__).parent
HOSTS = HERE / "fixtures" / "hosts"
REAL_HOSTS = sorted(p.name for p in HOSTS.iterdir() if p.is_dir())
ALL_HOSTS = REAL_HOSTS + sorted(SYNTHETIC)


def build_root(name: str, into: Path) -> Path:
    """A private copy of a fixture host under ``into`` (safe to write to)."""
    dest = into / name
    if name in SYNTHETIC:
        write_tree(str(dest), SYNTHETIC[name]())
    else:
        shutil.copytree(HOSTS / name, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def host_roots(tmp_path_factory) -> dict[str, Path]:
    """Every fixture host, read-only by convention (copy before writing)."""
    base = tmp_path_factory.mktemp("hosts")
    roots = {name: HOSTS / name for name in REAL_HOSTS}
    roots.update({name: build_root(name, base) for name in SYNTHETIC})
    return roots


@pytest.fixture
def run_cli(capsys):
    """Run kvmtune's entry point in-process: (exit code, stdout, stderr)."""
    from kvmtune.entry import main

    def run(*argv: str):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def check_json(run_cli):
    """``kvmtune --root ROOT check --json`` parsed, with its exit code."""

    def run(root, *extra: str):
        code, out, err = run_cli("--root", str(root), "check", "--json", *extra)
        assert err == "", err
        return code, json.loads(out)

    return run


def by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


live_kvm = pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
