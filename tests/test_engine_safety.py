"""One test per safety mechanism of the tuning engine, each failing when it is taken out.

read-back after a write, re-read before a write, the journal saved before the first
write, atomic writes, the fstab ownership check, the allow-list at the host door.
test_mutations.py removes each mechanism from a copy of the code and runs these.
"""

import errno
import json
import os

import pytest

from kvmtune.errors import HostError
from kvmtune.host.writable import WritableHost as Host
from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.faults import fork_run
from tests.support.treestate import tree_state


@pytest.fixture
def root(tmp_path):
    files = synthetic_host(n_cpus=4, iommu_groups=0)
    files["etc/fstab"] = "UUID=abc / ext4 defaults 0 1\n"
    return write_tree(str(tmp_path / "host"), files)


def profile(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


class DeafHost(Host):
    """A kernel that accepts every write of vm.swappiness and keeps its old value."""

    def write(self, rel, value):
        if rel == "proc/sys/vm/swappiness":
            return
        super().write(rel, value)


def test_read_back_catches_a_kernel_that_kept_its_value(root, tmp_path):
    from kvmtune.profile import load_profile
    from kvmtune.tune.engine import apply_profile

    plan = apply_profile(DeafHost(root), load_profile(profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")),
                         persist=False)
    change = next(c for c in plan.changes if c.target == "sysctl vm.swappiness")
    assert change.status == "failed" and "the kernel kept 60" in change.detail


class CountingHost(Host):
    writes = 0

    def write(self, rel, value):
        self.writes += 1
        super().write(rel, value)


def test_a_value_set_since_the_plan_is_not_written_again(root):
    from kvmtune.tune.engine import Context
    from kvmtune.tune.sysctl import SysctlChange

    host = CountingHost(root)
    change = SysctlChange("vm.swappiness", "60", "7")  # planned when the kernel said 60
    write_tree(root, {"proc/sys/vm/swappiness": "7\n"})  # another tool set it meanwhile
    change.execute(host, Context())
    assert host.writes == 0 and change.status == "ok"


def test_the_journal_holds_every_original_before_the_first_write(root, tmp_path):
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\nthp:\n  enabled: never\nksm:\n  run: 1\n")
    code, total, _ = fork_run(["--root", root, "apply", p, "--json", "--no-persist"])
    assert code == 0
    fork_run(["--root", root, "rollback", "--json"])
    # Kill at each call until the first one that touches the kernel's files: the journal is there.
    for n in range(1, total + 1):
        before = tree_state(root)
        code, _, _ = fork_run(["--root", root, "apply", p, "--json", "--no-persist"], kill_at=n, when="after")
        after = tree_state(root)
        touched = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        if any(k.startswith(("proc/sys", "sys/")) for k in touched):
            state = json.loads(open(os.path.join(root, "var/lib/kvmtune/state.json")).read())
            assert set(state["records"]) >= {"sysctl:vm.swappiness", "thp:enabled", "ksm:run"}
            assert state["records"]["sysctl:vm.swappiness"]["original"] == "60"
            return
        fork_run(["--root", root, "rollback", "--json"])
    pytest.fail("no kill point reached the kernel's files")


@pytest.mark.parametrize("how", ["owned", "shared", "knob"])
def test_a_write_that_fails_half_way_leaves_the_old_file_whole(root, monkeypatch, how):
    host = Host(root)
    rel, old = {"owned": ("etc/sysctl.d/99-zz-kvmtune.conf", "vm.swappiness = 1\n"),
                "shared": ("etc/fstab", "UUID=abc / ext4 defaults 0 1\n"),
                "knob": ("proc/sys/vm/swappiness", "60\n")}[how]
    write_tree(root, {rel: old})
    real_write = os.write

    def half_then_full_disk(fd, data):
        if len(data) > 2:
            real_write(fd, bytes(data)[:2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full_disk)
    with pytest.raises(HostError):
        {"owned": lambda: host.write_file(rel, "vm.swappiness = 2\nvm.dirty_ratio = 3\n"),
         "shared": lambda: host.write_shared(rel, old + "hugetlbfs /dev/hugepages hugetlbfs pagesize=2M 0 0\n"),
         "knob": lambda: host.write(rel, "1234567")}[how]()
    monkeypatch.undo()
    assert open(os.path.join(root, rel)).read() == old
    assert not [n for n in os.listdir(os.path.dirname(os.path.join(root, rel))) if "kvmtune-tmp" in n]


def test_a_foreign_fstab_line_for_the_same_mount_is_never_touched(run_cli, root, tmp_path):
    foreign = "UUID=abc / ext4 defaults 0 1\nhugetlbfs /dev/hugepages1G hugetlbfs pagesize=1024M 0 0\n"
    write_tree(root, {"etc/fstab": foreign})
    p = profile(tmp_path, "hugetlbfs:\n  - {path: /dev/hugepages1G, pagesize: 1G, size: 1G}\n")
    code, out, _ = run_cli("--root", root, "plan", p, "--json")
    assert any("does not own" in w and "/dev/hugepages1G" in w for w in json.loads(out)["warnings"])
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code == 0, err
    assert open(os.path.join(root, "etc/fstab")).read() == foreign
    run_cli("--root", root, "rollback", "--json")
    assert open(os.path.join(root, "etc/fstab")).read() == foreign


@pytest.mark.parametrize("op, args", [
    ("write_file", ("etc/passwd", "x\n")), ("write_file", ("etc/sysctl.d/10-other.conf", "x\n")),
    ("write", ("etc/shadow", "x")), ("write", ("sys/kernel/mm/ksm/../../../../etc/passwd", "x")),
    ("write", ("sys/module/kvm/parameters/halt_poll_ns", "0")), ("write_shared", ("etc/passwd", "x\n")),
    ("remove", ("etc/passwd",)), ("remove", ("etc/group",)), ("mkdir", ("etc/cron.d",)),
    ("mkdir", ("usr/local/bin/x",)), ("rmdir", ("etc",)), ("mount", ("hugetlbfs", "/etc", "")),
    ("mount", ("hugetlbfs", "/boot/x", "")), ("umount", ("/proc",)),
])
def test_the_host_refuses_what_kvmtune_does_not_own(root, op, args):
    before = tree_state(root)
    host = Host(root)
    with pytest.raises((HostError, ValueError)):
        result = getattr(host, op)(*args)
        if op == "rmdir" and result is False:  # rmdir says False for what it may not remove
            raise HostError(args[0], "refused")
    assert tree_state(root) == before


@pytest.mark.parametrize("op", ["write_file", "write"])
def test_the_host_never_writes_through_a_link(root, tmp_path, op):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    rel = "etc/sysctl.d/99-zz-kvmtune.conf" if op == "write_file" else "proc/sys/vm/swappiness"
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    os.symlink(str(target), path)
    with pytest.raises(HostError, match="symbolic link"):
        getattr(Host(root), op)(rel, "7\n")
    assert os.path.islink(path) and target.read_text() == "keep\n"
