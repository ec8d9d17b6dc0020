"""Shared fixtures: captured host dumps, synthetic hosts, and running the CLI in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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


# What a test could change on this machine: the kernel's knobs kvmtune tunes, the files under
# /etc and /var/lib it writes, hugetlbfs mounts. Read at the start and the end of the session.
LIVE_KNOBS = ("/proc/sys/vm/swappiness", "/proc/sys/vm/dirty_background_ratio", "/proc/sys/vm/stat_interval",
              "/proc/sys/vm/nr_hugepages", "/proc/sys/kernel/numa_balancing", "/sys/kernel/mm/ksm/run",
              "/sys/kernel/mm/ksm/pages_to_scan", "/sys/kernel/mm/ksm/sleep_millisecs",
              "/sys/kernel/mm/ksm/merge_across_nodes", "/sys/kernel/mm/transparent_hugepage/enabled",
              "/sys/kernel/mm/transparent_hugepage/defrag", "/proc/irq/default_smp_affinity",
              "/sys/devices/virtual/workqueue/cpumask")
LIVE_DIRS = ("/etc/sysctl.d", "/etc/tmpfiles.d", "/etc/default", "/etc/modprobe.d", "/etc/systemd/system.conf.d",
             "/etc/systemd/system",  # watch --install
             "/var/lib/kvmtune", "/boot/loader/entries")
LIVE_DIRS += ("/etc/modules-load.d", "/etc/udev/rules.d")  # the vfio section's files
LIVE_GLOBS = ("/sys/bus/pci/devices/*/driver_override",)  # the vfio section's bindings


def live_state() -> dict:
    import glob

    from tests.support.treestate import tree_state

    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    knobs = list(LIVE_KNOBS) + sorted(glob.glob("/sys/kernel/mm/hugepages/hugepages-*/nr_hugepages")
                                      + glob.glob("/sys/devices/system/node/node*/hugepages/*/nr_hugepages")
                                      + [p for g in LIVE_GLOBS for p in glob.glob(g)])
    return {"knobs": {k: read(k) for k in knobs}, "fstab": read("/etc/fstab"),
            "dirs": {d: tree_state(d) if os.path.isdir(d) else None for d in LIVE_DIRS},
            "mounts": sorted(l for l in (read("/proc/mounts") or "").splitlines() if " hugetlbfs " in l)}


@pytest.fixture(scope="session", autouse=True)
def live_host_untouched():
    """Whatever ran, this machine is as the session found it: the live tests restore what
    they change, and `pytest -m "not live"` changes nothing at all."""
    before = live_state()
    yield
    after = live_state()
    changed = [k for k in before if before[k] != after[k]]
    changed += [f"{k}: {before['knobs'][k]!r} -> {after['knobs'][k]!r}" for k in before["knobs"]
                if before["knobs"][k] != after["knobs"][k]]
    assert before == after, f"the session left the live host changed: {changed}"


# caches the tools keep by design; anything else new in the checkout is an artefact a test left
TOOL_CACHES = (".pytest_cache/", ".hypothesis/", ".ruff_cache/")


def checkout_extras() -> set[str] | None:
    """Untracked and ignored paths in the checkout (dirs collapsed), or None outside git."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(repo, ".git")):
        return None
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "-z"], cwd=repo,
                         capture_output=True, text=True).stdout
    entries = {e[3:] for e in out.split("\0") if e[:2] in ("??", "!!")}
    return {e for e in entries if not e.startswith(TOOL_CACHES) and "__pycache__" not in e}


@pytest.fixture(scope="session", autouse=True)
def checkout_left_clean():
    """No test leaves a build artefact, tarball or output file in the repository."""
    before = checkout_extras()
    yield
    after = checkout_extras()
    if before is not None and after is not None:
        assert after <= before, f"tests left these in the checkout: {sorted(after - before)}"


live_kvm = pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="this machine has no /dev/kvm")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
