"""bench journals what it changes, like apply: a kill at any instant is put back by rollback or
by the next bench, and a bench that ends leaves the journal and /var/lib/kvmtune as it found them.

bench measures the running kernel, so the CLI refuses a snapshot; these tests run the same
run_bench on a snapshot tree in a forked child (tests.support.faults.fork_call), where the
pool it grows and KSM's run are plain files, and kill it just before or just after each of
its mutating system calls. The live variant kills ``kvmtune bench --grow-pools --ksm`` on
this machine's kernel.
"""

import json
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import live_state
from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.faults import fork_call, fork_run
from tests.support.treestate import fresh, tree_diff, tree_state

MiB = 1 << 20
POOL = "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
KSM_RUN = "sys/kernel/mm/ksm/run"
STATE = "var/lib/kvmtune/state.json"
# An apply that already changed both targets the bench changes: its originals must survive.
APPLIED = "hugepages:\n  2M:\n    count: 3\nksm:\n  run: 0\n"


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync guards against power loss, not against a killed process (see test_engine_crash)."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    files = synthetic_host(n_cpus=2, iommu_groups=0)
    files["proc/sys/kernel/osrelease"] = "6.8.0\n"
    files[KSM_RUN] = "2\n"  # stopped with everything unmerged: the bench switches it to 1
    files["etc/fstab"] = "# /etc/fstab\nUUID=abc / ext4 errors=remount-ro 0 1\n"
    return write_tree(str(tmp_path_factory.mktemp("bench-template") / "host"), files)


def bench(root: str) -> dict:
    """``bench --grow-pools --ksm`` on a snapshot tree: the native walk over a 2M backing (the
    pool is empty, so it grows) and the KSM section (KSM is off, so it is switched on)."""
    from kvmtune.bench.run import Settings, run_bench
    from kvmtune.host.writable import WritableHost

    class TreeHost(WritableHost):
        def process_cpu_seconds(self, name):  # no ksmd in a tree
            return None

    settings = Settings(size=16 * MiB, rounds=1, sections=("native", "ksm"), grow_pools=True,
                        backings=("hugetlb-2M",))
    settings.accesses, settings.ksm_pages, settings.ksm_timeout_s = 1000, 16, 0.05
    return run_bench(TreeHost(root), settings)


def bench_child(root: str):
    def run():
        try:
            bench(root)
        except BaseException:
            import traceback

            traceback.print_exc()  # the child's stdout comes back to the test
            return 1
        return 0
    return run


def test_a_bench_that_ends_leaves_no_state_where_there_was_none(template, tmp_path):
    root = fresh(template, tmp_path)
    before = tree_state(root)
    code, total, out = fork_call(bench_child(root))
    assert code == 0, out
    assert tree_state(root) == before, tree_diff(before, tree_state(root))
    # it did change both targets and wrote a journal on the way (else this proves nothing)
    assert total >= 6, total
    result = bench(root)
    assert any("grew the 2M pool from 0 to 8" in c for c in result["changes"]), result["changes"]
    assert any("switched KSM on" in c for c in result["changes"]), result["changes"]
    assert result["host_restored"], result["warnings"]


def _applied(template, tmp_path, run_cli, name="host") -> str:
    root = fresh(template, tmp_path, name)
    profile = tmp_path / "applied.yaml"
    profile.write_text(APPLIED)
    code, out, err = run_cli("--root", root, "apply", str(profile), "--json")
    assert code == 0, err
    return root


def test_a_bench_that_ends_leaves_an_applys_journal_byte_for_byte(template, tmp_path, run_cli):
    root = _applied(template, tmp_path, run_cli)
    before = tree_state(root)
    code, _, out = fork_call(bench_child(root))
    assert code == 0, out
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


def test_while_it_runs_the_journal_holds_benchs_originals_and_never_overwrites_an_applys(template, tmp_path,
                                                                                          run_cli):
    root = _applied(template, tmp_path, run_cli)
    applied = json.loads(Path(root, STATE).read_text())
    assert applied["records"]["pool:2048:all"]["original"] == "0"
    _, total, _ = fork_call(bench_child(root))
    seen = None
    for n in range(1, total + 1):  # the first kill after which the pool is grown
        root = _applied(template, tmp_path, run_cli)
        applied_text = Path(root, STATE).read_text()
        fork_call(bench_child(root), kill_at=n, when="after")
        if Path(root, POOL).read_text() != "3\n":
            seen = json.loads(Path(root, STATE).read_text())
            break
    assert seen is not None, "the bench never grew the pool"
    assert seen["run"]["command"] == "bench" and seen["run"]["status"] == "running"
    assert seen["records"]["pool:2048:all"]["original"] == "0"  # the apply's, kept
    assert seen["bench"]["records"]["pool:2048:all"]["original"] == "3"  # the bench's own
    assert seen["bench"]["found"]["text"] == applied_text


def _every_kill_point(template, tmp_path, prepare, settle, expected) -> list:
    """Kill a bench on a tree from prepare() at each mutation; settle(root) puts it back (None,
    or what went wrong); the tree must then be expected(the tree as prepared)."""
    root = prepare()
    code, total, out = fork_call(bench_child(root))
    assert code == 0 and total >= 6, (code, total, out)
    failures = []
    for n in range(1, total + 1):
        for when in ("before", "after"):
            root = prepare()
            wanted = expected(tree_state(root))
            code, _, _ = fork_call(bench_child(root), kill_at=n, when=when)
            assert code == -signal.SIGKILL, (n, when, code)
            problem = settle(root)
            now = tree_state(root)
            if problem or now != wanted:
                failures.append((n, when, problem, tree_diff(wanted, now, 4)))
    return failures


def test_a_kill_at_every_mutation_of_a_bench_is_put_back_by_rollback(template, tmp_path, run_cli):
    original = tree_state(template)

    def settle(root):
        code, out, err = run_cli("--root", root, "rollback", "--json")
        return None if code == 0 else (code, err.strip()[:160])

    failures = _every_kill_point(template, tmp_path, lambda: fresh(template, tmp_path), settle,
                                 lambda found: original)
    assert not failures, f"{len(failures)} kill points not restored: {failures[:6]}"


def test_a_kill_at_every_mutation_of_a_bench_is_put_back_by_the_next_bench(template, tmp_path):
    original = tree_state(template)

    def settle(root):
        result = bench(root)
        return None if result["host_restored"] else result["warnings"]

    failures = _every_kill_point(template, tmp_path, lambda: fresh(template, tmp_path), settle,
                                 lambda found: original)
    assert not failures, f"{len(failures)} kill points not restored: {failures[:6]}"


def test_over_an_applys_journal_the_next_bench_restores_it_and_rollback_restores_everything(
        template, tmp_path, run_cli):
    original = tree_state(template)

    def by_bench(root):
        result = bench(root)
        return None if result["host_restored"] else result["warnings"]

    def by_rollback(root):
        code, out, err = run_cli("--root", root, "rollback", "--json")
        return None if code == 0 else (code, err.strip()[:160])

    prepare = lambda: _applied(template, tmp_path, run_cli)  # noqa: E731
    failures = _every_kill_point(template, tmp_path, prepare, by_bench, lambda found: found)
    assert not failures, f"next bench: {len(failures)} kill points not restored: {failures[:6]}"
    failures = _every_kill_point(template, tmp_path, prepare, by_rollback, lambda found: original)
    assert not failures, f"rollback: {len(failures)} kill points not restored: {failures[:6]}"


def test_a_killed_bench_is_named_and_apply_cannot_resume_it(template, tmp_path, run_cli):
    root = fresh(template, tmp_path)
    _, total, _ = fork_call(bench_child(root))
    root = fresh(template, tmp_path)
    code, _, _ = fork_call(bench_child(root), kill_at=total // 2)
    assert code == -signal.SIGKILL
    profile = tmp_path / "p.yaml"
    profile.write_text("sysctl:\n  vm.swappiness: 10\n")
    for extra in ((), ("--resume",)):
        code, out, err = run_cli("--root", root, "apply", str(profile), *extra)
        assert code == 5 and "a bench" in err and "the next 'kvmtune bench'" in err, (extra, code, err)


def test_a_bench_that_may_change_nothing_warns_of_what_a_killed_bench_left(template, tmp_path):
    from kvmtune.bench.run import Settings, run_bench
    from kvmtune.host.writable import WritableHost

    root = fresh(template, tmp_path)
    _, total, _ = fork_call(bench_child(root))
    code, _, _ = fork_call(bench_child(root), kill_at=total // 2)
    assert code == -signal.SIGKILL
    before = tree_state(root)
    result = run_bench(WritableHost(root), Settings(size=16 * MiB, rounds=1, sections=("native",),
                                                    backings=("hugetlb-2M",)))
    assert any("a bench" in w and "was interrupted" in w for w in result["warnings"]), result["warnings"]
    assert tree_state(root) == before  # it changes nothing, the journal included


def test_a_tampered_bench_section_is_refused_before_anything_is_written(template, tmp_path, run_cli):
    root = fresh(template, tmp_path)
    _, total, _ = fork_call(bench_child(root))
    for field, value in (("records", {"sysctl:kernel.core_pattern": {
            "type": "sysctl", "name": "kernel.core_pattern", "original": "|/bin/evil", "dirs": []}}),
                         ("found", {"text": "{}", "mode": 384, "uid": 0, "gid": 0})):
        root = fresh(template, tmp_path, f"tampered-{field}")
        code, _, _ = fork_call(bench_child(root), kill_at=total // 2)
        assert code == -signal.SIGKILL
        state = json.loads(Path(root, STATE).read_text())
        state["bench"][field] = value
        Path(root, STATE).write_text(json.dumps(state))
        before = tree_state(root)
        code, out, err = run_cli("--root", root, "rollback")
        assert code == 2 and "not a state kvmtune wrote" in err, (field, code, err)
        assert tree_state(root) == before


# -- live -------------------------------------------------------------------------------

def _can_change_pools() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access("/" + POOL, os.W_OK):
        return "the 2M pool is not writable here"
    if not os.path.exists("/dev/kvm"):
        return "this machine has no /dev/kvm"
    return None


@pytest.mark.live
@pytest.mark.skipif(_can_change_pools() is not None, reason=_can_change_pools() or "")
def test_live_a_kill_at_every_mutation_of_bench_grow_pools_ksm_then_rollback(run_cli):
    """On this kernel: kvmtune bench --grow-pools --ksm killed at each mutation, then rollback."""
    argv = ["bench", "--quick", "--grow-pools", "--ksm", "--only", "native,ksm", "--size", "16M", "--json"]
    knobs = ["/" + KSM_RUN] + sorted(str(p) for p in Path("/sys/kernel/mm/hugepages").glob("*/nr_hugepages"))
    saved = {k: Path(k).read_text() for k in knobs}
    before = live_state()
    try:
        code, total, out = fork_run(argv)
        assert code == 0, out
        assert live_state() == before
        failures, killed = [], 0
        for n in range(1, total + 1):
            for when in ("before", "after"):
                # A live run's path can differ (a pool the kernel grants only in part): one
                # that ends before the Nth mutation must simply have put everything back.
                code, _, out = fork_run(argv, kill_at=n, when=when)
                assert code in (0, -signal.SIGKILL), (n, when, code, out[-300:])
                killed += code == -signal.SIGKILL
                code, out, err = run_cli("rollback", "--json")
                now = live_state()
                if code != 0 or now != before:
                    failures.append((n, when, code, err.strip()[:160],
                                     [k for k in now if now[k] != before[k]]))
        assert not failures, f"{len(failures)} of {2 * total} kill points not restored: {failures[:4]}"
        assert killed >= total, (killed, total)
    finally:
        if os.path.exists("/" + STATE):
            run_cli("rollback")
        for knob, value in saved.items():
            if Path(knob).read_text() != value:
                Path(knob).write_text(value)
