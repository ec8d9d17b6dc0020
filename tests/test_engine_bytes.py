"""Lines kvmtune does not own, and originals it journaled: kept byte for byte.

kvmtune's lines in a shared file (fstab, irqbalance's environment file) are the ones
its journal proves it added, not whatever follows a marker an administrator can copy;
every other byte of a shared file survives apply and rollback; and every original
apply journals is one rollback accepts and puts back exactly.
"""

import json
import os

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree

ROOT_LINE = b"UUID=abc / ext4 defaults 0 1\n"
FSTAB_MARK = b"# kvmtune: managed entry, 'kvmtune rollback' removes it\n"
MOUNT = "hugetlbfs:\n  - {path: /dev/hugepages1G, pagesize: 1G, size: 1G}\n"


@pytest.fixture
def root(tmp_path):
    files = synthetic_host(n_cpus=4, iommu_groups=0)
    return write_tree(str(tmp_path / "host"), files)


def put(root, rel, data: bytes):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def get(root, rel) -> bytes | None:
    try:
        with open(os.path.join(root, rel), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def profile(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def test_a_copied_marker_does_not_make_the_root_line_kvmtunes(run_cli, root, tmp_path):
    fstab = b"# /etc/fstab\n" + FSTAB_MARK + ROOT_LINE
    put(root, "etc/fstab", fstab)
    for text in ("sysctl:\n  vm.swappiness: 7\n", MOUNT):
        code, _, err = run_cli("--root", root, "apply", profile(tmp_path, text), "--json")
        assert code == 0, err
        assert ROOT_LINE in get(root, "etc/fstab")
        code, _, err = run_cli("--root", root, "rollback", "--json")
        assert code == 0, err
        assert get(root, "etc/fstab") == fstab


def test_kvmtune_shaped_lines_without_a_record_are_left_and_named(run_cli, root, tmp_path):
    stale = FSTAB_MARK + b"hugetlbfs /dev/hugepages2M hugetlbfs pagesize=2M 0 0\n"
    fstab = ROOT_LINE + stale
    put(root, "etc/fstab", fstab)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, MOUNT), "--json")
    assert code == 0, err
    assert any("no record" in w for w in json.loads(out)["warnings"]), out
    assert get(root, "etc/fstab").startswith(fstab)
    run_cli("--root", root, "rollback", "--json")
    assert get(root, "etc/fstab") == fstab


def test_an_admins_file_at_kvmtunes_path_comes_back_on_rollback(run_cli, root, tmp_path):
    from kvmtune.tune.files import HEADER

    rel = "etc/sysctl.d/99-zz-kvmtune.conf"
    mine = HEADER.encode() + b"vm.dirty_ratio = 5\r\n# caf\xe9\x0c\n"
    put(root, rel, mine)
    code, out, err = run_cli("--root", root, "apply", profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n"), "--json")
    assert code == 0, err
    code, _, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert get(root, rel) == mine


def test_irqbalance_lines_after_a_copied_marker_are_not_kvmtunes():
    from kvmtune.tune.irqbalance import MARK, restored, with_ban

    admin = f"{MARK}\nIRQBALANCE_ONESHOT=yes\r\nIRQBALANCE_BANNED_CPULIST=7\n"
    applied = with_ban(admin, {2, 3}, admin)
    assert applied.startswith(admin) and applied.endswith("IRQBALANCE_BANNED_CPULIST=2-3\n")
    assert restored(admin, applied) == admin
    assert restored(admin, with_ban(applied, {1}, admin)) == admin


@pytest.mark.parametrize("value", [b"1" * 5000, b"60\n61", b"6\x7f0 \x1b[2J", b"6\xff0\xc3"])
def test_rollback_takes_back_every_sysctl_original_apply_journaled(run_cli, root, tmp_path, value):
    put(root, "proc/sys/vm/swappiness", value + b"\n")
    code, _, err = run_cli("--root", root, "apply", profile(tmp_path, "sysctl:\n  vm.swappiness: 7\n"),
                           "--no-persist", "--json")
    assert code == 0, err
    code, _, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert get(root, "proc/sys/vm/swappiness") == value + b"\n"


def test_a_large_irqbalance_original_is_taken_back():
    from kvmtune.tune.irqbalance import IrqbalanceChange

    big = "# " + "x" * (200 << 10) + "\n"
    assert IrqbalanceChange.parse_original(big) == big


@pytest.mark.parametrize("fstab", [
    b"# note\x0cUUID=def /mnt ext4 defaults 0 2\n" + ROOT_LINE,
    ROOT_LINE.replace(b"\n", b"\r\n") + b"# caf\xe9 \xff\xfe\x85 \xe2\x80\xa8 x\x1c\x1d\x1e\n",
    ROOT_LINE + b"# no final newline\x00",
])
def test_fstab_bytes_survive_apply_and_rollback(run_cli, root, tmp_path, fstab):
    put(root, "etc/fstab", fstab)
    code, _, err = run_cli("--root", root, "apply", profile(tmp_path, MOUNT), "--json")
    assert code == 0, err
    after = get(root, "etc/fstab")
    body = fstab if fstab.endswith(b"\n") else fstab + b"\n"
    assert after.startswith(body) and after.count(b"\n") == body.count(b"\n") + 2
    assert after[len(body):].startswith(FSTAB_MARK + b"hugetlbfs /dev/hugepages1G ")
    code, _, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert get(root, "etc/fstab") == fstab


def test_apply_never_journals_more_than_rollback_reads(run_cli, root, tmp_path, monkeypatch):
    from kvmtune.tune import journal
    from tests.support.treestate import tree_state

    monkeypatch.setattr(journal, "MAX_STATE", 2000)
    put(root, "etc/fstab", ROOT_LINE + b"#" * 3000 + b"\n")
    before = tree_state(root)
    code, _, err = run_cli("--root", root, "apply", profile(tmp_path, MOUNT), "--json")
    assert code != 0 and "larger than" in err, err
    assert tree_state(root) == before
