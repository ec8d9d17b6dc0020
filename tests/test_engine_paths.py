"""Where kvmtune writes: only its own files, never through a link, never outside --root.

Each case plants something hostile in a snapshot tree (a symlinked drop-in, knob, state
directory or mount parent, a tampered state file, a shared fstab with its own mode,
owner and xattrs) and asserts what was written, what was printed and what was left.
"""

import json
import os

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.treestate import tree_diff, tree_state

SECRET = "very-secret-content-0123456789\n"


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["etc/fstab"] = "UUID=abc / ext4 errors=remount-ro 0 1\n"
    return write_tree(str(tmp_path / "host"), files)


@pytest.fixture
def outside(tmp_path):
    """A directory beside the snapshot that nothing may touch, with a secret in it."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret").write_text(SECRET)
    (d / "secret").chmod(0o600)
    return d


def profile(tmp_path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def run_json(run_cli, root, *argv):
    code, out, err = run_cli("--root", root, *argv)
    return code, out, err


def test_symlinked_drop_in_is_refused_and_its_target_never_read(run_cli, root, outside, tmp_path):
    link = os.path.join(root, "etc/sysctl.d/99-zz-kvmtune.conf")
    os.makedirs(os.path.dirname(link))
    os.symlink(str(outside / "secret"), link)
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    before, outside_before = tree_state(root), tree_state(outside)
    for argv in (("plan", p, "--diff"), ("plan", p, "--json"), ("apply", p, "--json"), ("apply", p, "--diff")):
        code, out, err = run_json(run_cli, root, *argv)
        assert SECRET.strip() not in out + err, argv
        if argv[0] == "apply":
            assert code == 4, (code, out, err)
            assert "/etc/sysctl.d/99-zz-kvmtune.conf" in err and "link" in err
    assert tree_state(root) == before, tree_diff(before, tree_state(root))
    assert tree_state(outside) == outside_before


def test_symlinked_knob_cannot_write_outside_the_root(run_cli, root, outside, tmp_path):
    knob = os.path.join(root, "proc/sys/vm/swappiness")
    os.unlink(knob)
    os.symlink(str(outside / "secret"), knob)
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    outside_before = tree_state(outside)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code != 0 and SECRET.strip() not in out + err
    assert tree_state(outside) == outside_before


def test_relative_symlink_inside_the_root_is_resolved_inside_it(run_cli, root, tmp_path):
    # /proc/sys/vm/swappiness -> ../../../swappiness.real (inside the snapshot): reads and the
    # plan follow it inside the root; the write never replaces the link with a file.
    knob = os.path.join(root, "proc/sys/vm/swappiness")
    os.unlink(knob)
    write_tree(root, {"swappiness.real": "60\n"})
    os.symlink("../../../swappiness.real", knob)
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    code, out, err = run_json(run_cli, root, "plan", p, "--json")
    assert code == 0, err
    change = next(c for c in json.loads(out)["changes"] if c["target"] == "sysctl vm.swappiness")
    assert change["before"] == "60"
    code, out, err = run_json(run_cli, root, "apply", p, "--json", "--no-persist")
    assert code == 4 and "/proc/sys/vm/swappiness" in err and "link" in err
    assert os.path.islink(knob)


def test_symlinked_state_directory_is_refused(run_cli, root, outside, tmp_path):
    os.makedirs(os.path.join(root, "var/lib"))
    os.symlink(str(outside), os.path.join(root, "var/lib/kvmtune"))
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    before, outside_before = tree_state(root), tree_state(outside)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 4, (code, out, err)
    assert "/var/lib/kvmtune" in err and "link" in err
    assert tree_state(root) == before, tree_diff(before, tree_state(root))
    assert tree_state(outside) == outside_before


def test_symlinked_mount_parent_is_refused(run_cli, root, outside, tmp_path):
    os.makedirs(os.path.join(root, "mnt"))
    os.symlink(str(outside), os.path.join(root, "mnt/huge"))
    p = profile(tmp_path, "hugetlbfs:\n  - path: /mnt/huge/2M\n    pagesize: 2M\n")
    before, outside_before = tree_state(root), tree_state(outside)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 4, (code, out, err)
    assert "/mnt/huge" in err and "link" in err
    assert tree_state(root) == before
    assert tree_state(outside) == outside_before


def test_mount_over_a_directory_with_content_is_refused(run_cli, root, tmp_path):
    write_tree(root, {"srv/data/important": "keep me visible\n"})
    p = profile(tmp_path, "hugetlbfs:\n  - path: /srv/data\n    pagesize: 2M\n")
    before = tree_state(root)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 4 and "/srv/data" in err and "not empty" in err
    assert tree_state(root) == before


@pytest.mark.parametrize("state", [
    {"version": 1, "values": {}, "files": {"etc/passwd": None}, "mounts": {}, "dirs": [], "state_dirs": [],
     "profiles": []},
    {"version": 1, "values": {"etc/shadow": "x"}, "files": {}, "mounts": {}, "dirs": ["etc"],
     "state_dirs": [], "profiles": []},
    {"version": 1, "values": {}, "files": {}, "mounts": {"/etc": {"was": None, "dirs": ["etc"]}},
     "dirs": [], "state_dirs": [], "profiles": []},
    {"version": 2, "run": {"command": "apply", "status": "complete"},
     "records": {"file:passwd": {"type": "file", "file": "../../etc/passwd", "original": None}},
     "state_dirs": [], "profiles": []},
    {"version": 2, "run": {"command": "apply", "status": "complete"},
     "records": {"sysctl:x": {"type": "sysctl", "name": "../../../etc/passwd", "original": "1"}},
     "state_dirs": [], "profiles": []},
    {"version": 2, "run": {"command": "apply", "status": "complete"},
     "records": {"mount:/etc": {"type": "mount", "path": "/etc", "original": None, "dirs": ["etc"]}},
     "state_dirs": [], "profiles": []},
    {"version": 2, "run": {"command": "apply", "status": "complete"},
     "records": {"thing": {"type": "shell", "command": "rm -rf /"}}, "state_dirs": [], "profiles": []},
    "not json at all {",
    ["a", "list"],
])
def test_tampered_state_is_refused_before_rollback_acts(run_cli, root, state):
    text = state if isinstance(state, str) else json.dumps(state)
    write_tree(root, {"var/lib/kvmtune/state.json": text})
    before = tree_state(root)
    for argv in (("rollback", "--check", "--json"), ("rollback", "--json")):
        code, out, err = run_json(run_cli, root, *argv)
        assert code == 2, (argv, code, out, err)
        assert "state.json" in err and "Traceback" not in err
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


@pytest.fixture
def fstab_with_metadata(root):
    fstab = os.path.join(root, "etc/fstab")
    os.chmod(fstab, 0o640)
    os.chown(fstab, 0, 4)  # root:adm
    os.setxattr(fstab, "user.origin", b"installer")
    return fstab


def test_fstab_keeps_its_mode_owner_and_xattrs(run_cli, root, fstab_with_metadata, tmp_path):
    p = profile(tmp_path, "hugetlbfs:\n  - path: /dev/hugepages2M\n    pagesize: 2M\n")
    before = tree_state(root)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 0, err
    st = os.stat(fstab_with_metadata)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 4)
    assert os.getxattr(fstab_with_metadata, "user.origin") == b"installer"
    assert "hugetlbfs /dev/hugepages2M hugetlbfs" in open(fstab_with_metadata).read()
    code, out, err = run_json(run_cli, root, "rollback", "--json")
    assert code == 0, err
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


@pytest.mark.parametrize("target", ["fstab.real", "/etc/fstab.real"])
def test_symlinked_fstab_is_never_written_through(run_cli, root, tmp_path, target):
    # Even inside the root: a write never follows a link (tests/test_engine_writes.py has
    # etc/fstab -> passwd). The plan still reads it, so it shows what the edit would be.
    fstab = os.path.join(root, "etc/fstab")
    os.rename(fstab, os.path.join(root, "etc/fstab.real"))
    os.symlink(target, fstab)
    p = profile(tmp_path, "hugetlbfs:\n  - path: /dev/hugepages2M\n    pagesize: 2M\n")
    before = tree_state(root)
    code, out, err = run_json(run_cli, root, "plan", p, "--json")
    assert code == 0, err
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 4 and "/etc/fstab" in err and "link" in err, (code, out, err)
    assert os.readlink(fstab) == target
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


def test_fstab_linked_out_of_the_root_is_refused(run_cli, root, outside, tmp_path):
    fstab = os.path.join(root, "etc/fstab")
    os.unlink(fstab)
    (outside / "fstab").write_text("UUID=x / ext4 defaults 0 1\n")
    os.symlink(str(outside / "fstab"), fstab)
    p = profile(tmp_path, "hugetlbfs:\n  - path: /dev/hugepages2M\n    pagesize: 2M\n")
    before, outside_before = tree_state(root), tree_state(outside)
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 4 and "/etc/fstab" in err
    assert tree_state(root) == before and tree_state(outside) == outside_before


def test_remounted_hugetlbfs_gets_its_options_back(run_cli, root, tmp_path):
    mounts = open(os.path.join(root, "proc/mounts")).read()
    write_tree(root, {"proc/mounts": mounts + "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"})
    os.makedirs(os.path.join(root, "dev/hugepages"), exist_ok=True)
    p = profile(tmp_path, "hugetlbfs:\n  - path: /dev/hugepages\n    pagesize: 2M\n    mode: \"1770\"\n")
    before = tree_state(root)
    code, out, err = run_json(run_cli, root, "apply", p, "--json", "--no-persist")
    assert code == 0, err
    assert "mode=1770" in open(os.path.join(root, "proc/mounts")).read()
    code, out, err = run_json(run_cli, root, "rollback", "--json")
    assert code == 0 and json.loads(out)["changed"] is True, out
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


def test_kvmtunes_own_leftovers_are_never_taken_for_the_hosts_originals(run_cli, root, tmp_path):
    before = tree_state(root)
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\nthp:\n  enabled: never\n")
    assert run_json(run_cli, root, "apply", p, "--json")[0] == 0
    os.unlink(os.path.join(root, "var/lib/kvmtune/state.json"))  # the record is lost
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 8\nthp:\n  enabled: never\n")
    code, out, err = run_json(run_cli, root, "apply", p, "--json")
    assert code == 0, err
    assert any("kvmtune" in w and "own" in w for w in json.loads(out)["warnings"]), out
    code, out, err = run_json(run_cli, root, "rollback", "--json")
    assert code == 0, err
    # Values kvmtune cannot tell from the host's stay as found at the second apply; its own
    # drop-ins are removed, never "restored" to what kvmtune itself wrote.
    assert not os.path.exists(os.path.join(root, "etc/sysctl.d/99-zz-kvmtune.conf"))
    assert not os.path.exists(os.path.join(root, "etc/tmpfiles.d/kvmtune.conf"))
    after = tree_state(root)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {"proc/sys/vm/swappiness", "sys/kernel/mm/transparent_hugepage/enabled",
                       "etc/sysctl.d", "etc/tmpfiles.d", "var", "var/lib", "var/lib/kvmtune"}, changed
