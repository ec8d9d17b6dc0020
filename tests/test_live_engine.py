"""The live kernel: a kill at every mutation of an apply is rolled back exactly.

The same harness as test_engine_crash, on this machine's kernel and /etc: sysctls, 2M
and 1G pools, two hugetlbfs mounts in a temporary directory, KSM and THP, with and
without persistence (sysctl.d, tmpfiles.d, fstab, the GRUB drop-in). Everything is
saved first and put back by a finalizer, by hand if rollback itself fails.
"""

import os
import signal
import subprocess

import pytest

from tests.support.faults import fork_run
from tests.support.treestate import tree_diff, tree_state
from tests.test_live_apply import KNOBS, _can_run, gigantic_page_available, read

pytestmark = [pytest.mark.live, pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")]
DIRS = ("/etc/sysctl.d", "/etc/tmpfiles.d", "/etc/default")


def live_state(base: str) -> dict:
    """What an apply may touch on this machine, as found."""
    out = {"knobs": {k: read(k) for k in KNOBS}}
    for d in DIRS:
        out[d] = tree_state(d) if os.path.isdir(d) else None
    out["fstab"] = read("/etc/fstab")
    out["state"] = os.path.lexists("/var/lib/kvmtune")
    out["mounts"] = sorted(l for l in read("/proc/mounts").splitlines() if " hugetlbfs " in l)
    out["base"] = tree_state(base)
    return out


def restore_by_hand(saved: dict, base: str) -> None:
    for line in read("/proc/mounts").splitlines():
        if " hugetlbfs " in line and line.split()[1].startswith(base):
            subprocess.run(["umount", line.split()[1]], check=False)
    subprocess.run(["rm", "-rf", "/var/lib/kvmtune"], check=False)
    for d in DIRS:
        if saved[d] is None:
            subprocess.run(["rm", "-rf", d], check=False)
        else:
            for rel in sorted(set(tree_state(d)) - set(saved[d]), reverse=True):
                path = os.path.join(d, rel)
                (os.rmdir if os.path.isdir(path) and not os.path.islink(path) else os.unlink)(path)
    with open("/etc/fstab", "w") as f:
        f.write(saved["fstab"])
    with open("/sys/kernel/mm/ksm/run", "w") as f:
        f.write("2")
    for path, value in saved["knobs"].items():
        if value is not None and read(path) != value:
            with open(path, "w") as f:
                f.write(value.split("[")[1].split("]")[0] if "[" in value else value.strip())


@pytest.fixture
def live(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("live-engine"))
    saved = live_state(base)
    yield saved, base
    if live_state(base) != saved:
        subprocess.run(["python", "-m", "kvmtune", "rollback", "--json"], capture_output=True, check=False)
    if live_state(base) != saved:
        restore_by_hand(saved, base)
    assert live_state(base) == saved, "the live host was not restored"


def profile_text(base: str) -> str:
    return f"""
sysctl:
  vm.swappiness: 13
  vm.dirty_background_ratio: 7
hugepages:
  2M: 8
  1G: {{count: 1, boot: true}}
hugetlbfs:
  - {{path: {base}/huge/2M, pagesize: 2M, size: 8M, mode: "1770"}}
  - {{path: {base}/huge/1G, pagesize: 1G}}
ksm:
  run: 1
  pages_to_scan: 300
thp:
  defrag: defer
"""


@pytest.mark.parametrize("persist", [False, True], ids=["no-persist", "persist"])
def test_a_kill_at_every_mutation_on_the_live_kernel_is_rolled_back_exactly(live, tmp_path, run_cli, persist):
    saved, base = live
    if not gigantic_page_available():
        pytest.skip("the kernel cannot grant a 1 GiB page right now (memory too fragmented)")
    if "[defer]" in (saved["knobs"]["/sys/kernel/mm/transparent_hugepage/defrag"] or ""):
        pytest.skip("THP defrag is already 'defer' here: the profile would not change it")
    profile = tmp_path / "live.yaml"
    profile.write_text(profile_text(base))
    argv = ["apply", str(profile), "--json"] + ([] if persist else ["--no-persist"])
    code, total, out = fork_run(argv)
    assert code == 0 and total, out
    code, _, err = run_cli("rollback", "--json")
    assert code == 0 and live_state(base) == saved, (err, tree_diff(saved["base"], live_state(base)["base"]))
    failures = []
    for n in range(1, total + 1):
        for when in ("before", "after"):
            code, _, _ = fork_run(argv, kill_at=n, when=when)
            assert code == -signal.SIGKILL, (n, when, code)
            code, out, err = run_cli("rollback", "--json")
            now = live_state(base)
            if code != 0 or now != saved:
                failures.append((n, when, code, err.strip()[:160],
                                 [k for k in saved if saved[k] != now[k]]))
                restore_by_hand(saved, base)
    assert not failures, f"{len(failures)} of {2 * total} kill points not restored: {failures[:5]}"
