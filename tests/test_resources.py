"""Every reader meets a FIFO, a 6 GiB sparse file and a 131 KB CPU list, under 1 GB of memory.

Each command runs as a subprocess with RLIMIT_AS of 1 GB (``ulimit -v``) and a 5 s limit:
it must answer with exit 2 (bad input) or, where the input is judged, 1 or 0, never hang,
never run out of memory (exit 3), never read a FIFO's writer's data or a file's gigabytes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree

REPO = Path(__file__).resolve().parent.parent
LIMIT_AS = 1 << 30
TIMEOUT = 5.0
SPARSE = 6 << 30
# "0-8191" repeated to 131 KB: every range is within what a kernel numbers, the total is not
# (153 M ids). Kept below MAX_ARG_STRLEN (128 KiB) so it can be a command-line argument too.
HUGE_CPULIST = ",".join(["0-8191"] * (130_000 // 7))
DROP_IN = "etc/sysctl.d/99-zz-kvmtune.conf"
STATE = "var/lib/kvmtune/state.json"


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def kvmtune(*argv: str) -> tuple[int, str, str, float]:
    """(exit, stdout, stderr, seconds) of kvmtune under 1 GB of address space."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KVMTUNE_DEBUG", None)
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "kvmtune", *argv], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT, preexec_fn=_limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"kvmtune {' '.join(a[:40] for a in argv)} did not answer within {TIMEOUT} s")
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def plant(path: Path, what: str) -> None:
    """A FIFO, a 6 GiB sparse file or a 131 KB CPU list at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    elif what == "sparse":
        with open(path, "wb") as f:
            f.truncate(SPARSE)
    else:
        path.write_text(HUGE_CPULIST + "\n")


@pytest.fixture
def root(tmp_path) -> Path:
    files = synthetic_host()
    files["etc/fstab"] = "UUID=abc / ext4 errors=remount-ro 0 1\n"
    return Path(write_tree(str(tmp_path / "host"), files))


@pytest.fixture
def profile(tmp_path) -> str:
    path = tmp_path / "p.yaml"
    path.write_text("sysctl:\n  vm.swappiness: 7\n")
    return str(path)


def answered(code: int, err: str, allowed=(2,)) -> None:
    assert code in allowed, (code, err[-600:])
    assert "Traceback" not in err and "MemoryError" not in err, err[-600:]


WHAT = ["fifo", "sparse"]


@pytest.mark.parametrize("what", WHAT)
@pytest.mark.parametrize("argv", [("plan", "P"), ("apply", "P", "--json"), ("verify", "P"), ("rollback",),
                                  ("rollback", "--check")])
def test_state_file_that_is_not_a_file_or_too_big(root, profile, what, argv):
    plant(root / STATE, what)
    code, out, err, _ = kvmtune("--root", str(root), *[profile if a == "P" else a for a in argv])
    answered(code, err)
    assert "/var/lib/kvmtune/state.json" in err
    assert (root / STATE).exists()


@pytest.mark.parametrize("what", WHAT)
@pytest.mark.parametrize("argv", [("plan", "P"), ("apply", "P", "--json"), ("verify", "P")])
def test_own_drop_in_that_is_not_a_file_or_too_big(root, profile, what, argv):
    plant(root / DROP_IN, what)
    before = os.lstat(root / DROP_IN)
    code, out, err, _ = kvmtune("--root", str(root), *[profile if a == "P" else a for a in argv])
    answered(code, err)
    assert f"/{DROP_IN}" in err
    after = os.lstat(root / DROP_IN)
    assert (after.st_ino, after.st_size, after.st_mode) == (before.st_ino, before.st_size, before.st_mode)
    assert (root / "proc/sys/vm/swappiness").read_text() == "60\n"


@pytest.mark.parametrize("what", WHAT + ["cpulist"])
def test_check_and_snapshot_meet_every_kind_of_file(root, tmp_path, what):
    for rel in ("sys/devices/system/cpu/online", "sys/devices/system/node/online", "proc/meminfo"):
        plant(root / rel, what)
    code, out, err, _ = kvmtune("--root", str(root), "check", "--json")
    answered(code, err, (0, 1))
    json.loads(out)
    code, out, err, _ = kvmtune("--root", str(root), "snapshot", str(tmp_path / "snap"))
    answered(code, err, (0,))
    code, out, err, _ = kvmtune("--root", str(root), "partition")
    answered(code, err, (0, 1, 2))


def test_profile_cpu_list_is_bounded_in_total(root, tmp_path):
    path = tmp_path / "cpus.yaml"
    path.write_text(f"cpus:\n  isolated: {HUGE_CPULIST}\n")
    for argv in (("plan", str(path)), ("apply", str(path), "--json")):
        code, out, err, _ = kvmtune("--root", str(root), *argv)
        answered(code, err)
        assert str(path) in err


def test_partition_isolated_is_bounded_in_total(root):
    code, out, err, _ = kvmtune("--root", str(root), "partition", "--isolated", HUGE_CPULIST)
    answered(code, err)
    assert "--isolated" in err


@pytest.mark.parametrize("what", WHAT)
@pytest.mark.parametrize("command", ["report", "cpu-baseline"])
def test_collected_results_that_are_not_files_or_too_big(tmp_path, what, command):
    results = tmp_path / "results"
    plant(results / "host-a.json", what)
    code, out, err, _ = kvmtune(command, str(results))
    answered(code, err, (1, 2))
    assert "host-a.json" in out + err


def test_a_full_check_reads_each_file_once(host_roots):
    """The node list is read by the numa facts and by the ksm check's node count: one read."""
    from collections import Counter

    from kvmtune.checks import HOST_FACTS, REGISTRY
    from kvmtune.checks.read import read_facts
    from kvmtune.host.door import Host

    class Counting(Host):
        def __init__(self, root):
            super().__init__(root)
            self.reads = Counter()

        def read(self, rel, limit=1 << 20):
            self.reads[rel] += 1
            return super().read(rel, limit)

    host = Counting(str(host_roots["amd-epyc7451-96c-8n"]))
    names = [n for c in REGISTRY.values() for n in c[3]] + list(HOST_FACTS)
    read_facts(host, list(dict.fromkeys(names)))
    assert host.reads["sys/devices/system/node/online"] == 1
    assert [rel for rel, n in host.reads.items() if n > 1] == []
