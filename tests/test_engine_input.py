"""Hostile and oversized profiles: exit 2, a message naming file and key, the tree untouched.

Profile values, names and paths are data: nothing in a profile may become a line of a
persisted file, a path outside kvmtune's own, or a quote of a file that is not a profile.
"""

import os
import signal

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.support.treestate import tree_diff, tree_state
from tests.support.failure import failure_object


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["etc/fstab"] = "UUID=abc / ext4 errors=remount-ro 0 1\n"
    return write_tree(str(tmp_path / "host"), files)


@pytest.fixture
def refused(run_cli, root, tmp_path):
    """Apply a profile text; assert exit 2, no output, nothing changed; return the message."""

    def run(text: str, *, name: str = "bad.yaml", timeout: float = 5.0, named=None) -> str:
        path = tmp_path / name
        path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
        before = tree_state(root)
        # A hard stop, so a parser that runs away fails the test instead of hanging it (a
        # BaseException: kvmtune's own handlers must not be able to swallow it).
        signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt("profile not refused in time")))
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            code, out, err = run_cli("--root", root, "apply", str(path), "--json")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        assert code == 2, (code, out, err)
        failure_object(code, out, err)
        assert "Traceback" not in err
        assert err.startswith(f"kvmtune: error: {named or path}"), err
        assert tree_state(root) == before, tree_diff(before, tree_state(root))
        return err

    return run


@pytest.mark.parametrize("key", [
    "-vm.nonexistent\nfs.protected_symlinks = 0\nkernel.yama.ptrace_scope = 0\n#",
    "vm.swappiness\nkernel.sysrq",
    "vm.swappiness = 1\n#",
    "vm swappiness",
    "vm.swappiness\x1b[31m",
])
def test_sysctl_names_are_data(refused, key):
    import json

    err = refused(f"sysctl:\n  {json.dumps(key)}: 1\n")
    assert ":2:" in err and "sysctl name" in err
    assert "ptrace_scope" not in err.split("sysctl")[0]


@pytest.mark.parametrize("value", ["1\nkernel.sysrq = 1", "1\r", "1\x00", "\x1b[2J", " ", "1\tkernel.x=1\n"])
def test_sysctl_values_are_data(refused, value):
    import json

    err = refused(f"sysctl:\n  vm.swappiness: {json.dumps(value)}\n")
    assert ":2:" in err and "vm.swappiness" in err


@pytest.mark.parametrize("path", [
    "/etc", "/./etc", "/etc/", "/var/lib/kvmtune", "/var/lib/kvmtune/x", "/proc/x", "/sys/fs/x", "/usr/local/huge",
    "/boot/huge", "/", "//etc", "/dev/../etc", "/mnt/a b", "/mnt/tab\there",
    "/mnt/x hugetlbfs defaults 0 0\n/dev/vdb /boot ext4", "/mnt/back\\040slash", "/mnt/#comment",
])
def test_mount_paths_are_data(refused, path):
    import json

    err = refused(f"hugetlbfs:\n  - path: {json.dumps(path)}\n    pagesize: 2M\n")
    assert "hugetlbfs[0].path" in err


@pytest.mark.parametrize("field, value", [("owner", "root\nx"), ("group", "kvm x"), ("owner", "../../etc"),
                                          ("group", "a" * 300)])
def test_mount_owner_and_group_are_names(refused, field, value):
    import json

    err = refused(f"hugetlbfs:\n  - path: /dev/hugepages2M\n    pagesize: 2M\n    {field}: {json.dumps(value)}\n")
    assert f"hugetlbfs[0].{field}" in err


def test_a_file_that_is_not_a_profile_is_named_not_quoted(refused, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$j9T$SECRETHASH$abcdefgh:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    err = refused(f"extends: {secret}\nsysctl:\n  vm.swappiness: 1\n")
    assert "SECRETHASH" not in err and "root:" not in err
    assert str(secret) in err and "not a profile" in err
    err = refused(secret.read_text(), name="shadow.yaml")
    assert "SECRETHASH" not in err and "not a profile" in err


def test_extends_of_a_non_regular_file_is_refused(refused, tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    err = refused(f"extends: {fifo}\n")
    assert "not a regular file" in err


def test_billion_laughs_is_refused_at_the_first_alias(refused):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    err = refused("\n".join(lines) + "\n")
    assert "alias" in err


def test_self_referencing_alias_is_refused(refused):
    err = refused("sysctl: &s\n  x: *s\n")
    assert "alias" in err


def test_deep_nesting_is_refused(refused):
    err = refused("sysctl: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest" in err and "deep" in err


def test_oversized_profile_is_refused_before_parsing(refused):
    body = "sysctl:\n" + "".join(f"  vm.k{i}: {i}\n" for i in range(80_000))
    assert len(body) > 1 << 20
    err = refused(body)
    assert "1 MiB" in err


def test_extends_depth_is_capped(refused, tmp_path):
    for i in range(40):
        (tmp_path / f"p{i}.yaml").write_text(f"extends: p{i + 1}.yaml\n" if i < 39 else "sysctl: {}\n")
    err = refused("extends: p0.yaml\n", named=tmp_path / "p14.yaml")
    assert ":1:10: extends:" in err and "deeper than 16" in err
