"""Writes that must not escape: every written path is resolved component by component inside
the root and never through a link; the tar of a snapshot is written like any output file;
rollback writes a sysctl only where kvmtune's own drop-in names it.

All on snapshot trees (the live kernel is never touched here).
"""

import json
import os
import shutil
import tarfile

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.treestate import tree_diff, tree_state

PASSWD = "root:x:0:0:root:/root:/bin/bash\n"
DROPIN = "etc/sysctl.d/99-zz-kvmtune.conf"
RUNTIME = "run/kvmtune/runtime-sysctls"


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["etc/fstab"] = "UUID=abc / ext4 errors=remount-ro 0 1\n"
    files["etc/passwd"] = PASSWD
    files["proc/sys/kernel/core_pattern"] = "core\n"
    return write_tree(str(tmp_path / "host"), files)


def profile(tmp_path, text: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def test_a_linked_directory_on_a_knob_path_is_never_written_through(run_cli, root, tmp_path):
    # proc/sys/vm -> ../../etc: the profile key vm.passwd would be etc/passwd.
    os.rename(os.path.join(root, "proc/sys/vm"), os.path.join(root, "proc/sys/vm.real"))
    os.symlink("../../etc", os.path.join(root, "proc/sys/vm"))
    p = profile(tmp_path, "sysctl:\n  vm.passwd: 1\n")
    before = tree_state(root)
    for argv in (("apply", p, "--json"), ("apply", p, "--json", "--no-persist")):
        code, out, err = run_cli("--root", root, *argv)
        assert code == 4, (argv, code, out, err)
        assert "/proc/sys/vm" in err and "link" in err
    assert open(os.path.join(root, "etc/passwd")).read() == PASSWD
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


def test_a_linked_directory_on_a_drop_in_path_is_never_written_through(run_cli, root, tmp_path):
    os.makedirs(os.path.join(root, "elsewhere"))
    os.symlink("../elsewhere", os.path.join(root, "etc/sysctl.d"))
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code != 0, (out, err)
    assert os.listdir(os.path.join(root, "elsewhere")) == []
    assert open(os.path.join(root, "proc/sys/vm/swappiness")).read() == "60\n"


@pytest.mark.parametrize("target", ["passwd", "/etc/passwd", "../etc/passwd"])
def test_fstab_linked_to_another_file_is_never_edited(run_cli, root, tmp_path, target):
    fstab = os.path.join(root, "etc/fstab")
    os.unlink(fstab)
    os.symlink(target, fstab)
    p = profile(tmp_path, "hugetlbfs:\n  - path: /dev/hugepages2M\n    pagesize: 2M\n")
    before = tree_state(root)
    code, out, err = run_cli("--root", root, "apply", p, "--json")
    assert code == 4, (code, out, err)
    assert "/etc/fstab" in err and "link" in err
    assert open(os.path.join(root, "etc/passwd")).read() == PASSWD
    assert tree_state(root) == before, tree_diff(before, tree_state(root))


@pytest.mark.parametrize("name", ["out.tar", "out.tar.gz"])
def test_snapshot_tar_never_follows_a_link_at_its_name(run_cli, root, tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), tmp_path / name)
    code, out, err = run_cli("--root", root, "snapshot", "--tar", str(tmp_path / name))
    assert code == 0, err
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(tmp_path / name)
    with tarfile.open(tmp_path / name) as tar:
        assert "kvmtune-snapshot.json" in tar.getnames()
    assert [n for n in os.listdir(tmp_path) if "tmp" in n] == []


def test_snapshot_tar_is_atomic(run_cli, root, tmp_path, monkeypatch):
    # A failure half-way leaves the old file as it was, and no temp file beside it.
    out_path = tmp_path / "out.tar"
    out_path.write_text("old\n")
    import tarfile as tarfile_mod

    def broken_add(self, *a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tarfile_mod.TarFile, "add", broken_add)
    code, out, err = run_cli("--root", root, "snapshot", "--tar", str(out_path))
    assert code != 0
    assert out_path.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["host", "out.tar"]


def _state(root) -> dict:
    with open(os.path.join(root, "var/lib/kvmtune/state.json")) as f:
        return json.load(f)


def _write_state(root, data: dict) -> None:
    with open(os.path.join(root, "var/lib/kvmtune/state.json"), "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize("persist", [True, False])
def test_rollback_writes_no_sysctl_that_kvmtunes_drop_in_does_not_name(run_cli, root, tmp_path, persist):
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json", *(() if persist else ("--no-persist",)))
    assert code == 0, err
    data = _state(root)
    data["records"]["sysctl:kernel.core_pattern"] = {"type": "sysctl", "name": "kernel.core_pattern",
                                                     "original": "|/tmp/evil %p"}
    _write_state(root, data)
    for argv in (("rollback", "--check", "--json"), ("rollback", "--json")):
        code, out, err = run_cli("--root", root, *argv)
        assert open(os.path.join(root, "proc/sys/kernel/core_pattern")).read() == "core\n"
        change = next(c for c in json.loads(out)["changes"] if c["target"] == "sysctl kernel.core_pattern")
        assert change["status"] == "blocked" and "drop-in" in change["detail"], change
    assert code == 1, (out, err)
    swappiness = open(os.path.join(root, "proc/sys/vm/swappiness")).read()
    assert swappiness == "60\n"  # bound (a shipped profile sets it): restored
    # The record is kept, never silently dropped: what kvmtune cannot verify stays for a person.
    assert "sysctl:kernel.core_pattern" in _state(root)["records"]


@pytest.mark.parametrize("persist", [True, False])
def test_a_sysctl_is_bound_by_kvmtunes_drop_in(run_cli, root, tmp_path, persist):
    # vm.dirty_ratio: set by no shipped profile, so only the drop-in binds its record.
    write_tree(root, {"proc/sys/vm/dirty_ratio": "20\n"})
    p = profile(tmp_path, "sysctl:\n  vm.dirty_ratio: 5\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json", *(() if persist else ("--no-persist",)))
    assert code == 0, err
    if not persist:  # the runtime-only names, in kvmtune's own file under /run (gone at reboot, with the values)
        assert "vm.dirty_ratio" in open(os.path.join(root, RUNTIME)).read()
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, (out, err)
    assert open(os.path.join(root, "proc/sys/vm/dirty_ratio")).read() == "20\n"
    assert not os.path.lexists(os.path.join(root, RUNTIME)) and not os.path.lexists(os.path.join(root, DROPIN))
    assert not os.path.exists(os.path.join(root, "var/lib/kvmtune/state.json"))


def test_a_sysctl_a_later_profile_drops_stays_bound(run_cli, root, tmp_path):
    # P1 sets vm.dirty_ratio (no shipped profile does), P2 does not: the drop-in P2 writes no
    # longer sets it, but still names it as one rollback restores.
    write_tree(root, {"proc/sys/vm/dirty_ratio": "20\n"})
    for text in ("sysctl:\n  vm.dirty_ratio: 5\n", "sysctl:\n  vm.swappiness: 7\n"):
        code, out, err = run_cli("--root", root, "apply", profile(tmp_path, text), "--json")
        assert code == 0, err
    dropin = open(os.path.join(root, DROPIN)).read()
    assert "vm.dirty_ratio =" not in dropin and "# kvmtune restores on rollback: vm.dirty_ratio\n" in dropin
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, (out, err)
    assert open(os.path.join(root, "proc/sys/vm/dirty_ratio")).read() == "20\n"
    assert open(os.path.join(root, "proc/sys/vm/swappiness")).read() == "60\n"
    assert not os.path.lexists(os.path.join(root, DROPIN))


@pytest.mark.parametrize("where", [DROPIN, RUNTIME])
def test_a_restore_line_binds_only_inside_kvmtunes_sealed_file(run_cli, root, tmp_path, where):
    # A restore line that kvmtune's seal does not cover is no binding: kernel.core_pattern stays blocked.
    p = profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n")
    code, out, err = run_cli("--root", root, "apply", p, "--json", *(() if where == DROPIN else ("--no-persist",)))
    assert code == 0, err
    path = os.path.join(root, where)
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text.replace("# kvmtune seal", "# kvmtune restores on rollback: kernel.core_pattern\n# kvmtune seal"))
    data = _state(root)
    data["records"]["sysctl:kernel.core_pattern"] = {"type": "sysctl", "name": "kernel.core_pattern",
                                                     "original": "|/tmp/evil %p"}
    _write_state(root, data)
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 1, (out, err)
    assert open(os.path.join(root, "proc/sys/kernel/core_pattern")).read() == "core\n"


@pytest.mark.parametrize("op, rel, linked, target", [
    ("write", "proc/sys/vm/passwd", "proc/sys/vm", "../../etc"),
    ("write_file", "etc/sysctl.d/99-zz-kvmtune.conf", "etc/sysctl.d", "../elsewhere"),
    ("write_shared", "etc/fstab", "etc/fstab", "passwd"),
    ("remove", "etc/sysctl.d/99-zz-kvmtune.conf", "etc/sysctl.d", "../elsewhere"),
])
def test_the_host_resolves_every_written_component_without_following_links(root, op, rel, linked, target):
    # The host layer itself, without the engine's check before the run: a link anywhere on
    # the path is refused at the write.
    from kvmtune.errors import HostError
    from kvmtune.host.writable import WritableHost

    os.makedirs(os.path.join(root, "elsewhere"))
    write_tree(root, {"elsewhere/99-zz-kvmtune.conf": "keep\n"})
    path = os.path.join(root, linked)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)
    before = tree_state(root)
    with pytest.raises(HostError, match="symbolic link"):
        getattr(WritableHost(root), op)(*((rel,) if op == "remove" else (rel, "7\n")))
    assert tree_state(root) == before, tree_diff(before, tree_state(root))
