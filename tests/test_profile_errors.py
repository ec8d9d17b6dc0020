"""Every class of bad profile: exit 2, file:line:column and key path, nothing touched."""

import pytest

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.test_apply import tree


@pytest.fixture
def root(tmp_path):
    files = synthetic_host()
    files["proc/sys/vm/swappiness"] = "60\n"
    return write_tree(str(tmp_path / "host"), files)


CASES = [
    ("syntax", "sysctl:\n  vm.swappiness: [10\n", ":3:1:", "YAML syntax error"),
    ("unknown top key", "sysctls:\n  vm.swappiness: 10\n", ":1:1: sysctls:", "did you mean 'sysctl'?"),
    ("unknown ksm key", "ksm:\n  pages_to_scann: 10\n", ":2:3: ksm.pages_to_scann:", "did you mean 'pages_to_scan'?"),
    ("unknown thp key", "thp:\n  enable: never\n", ":2:3: thp.enable:", "did you mean 'enabled'?"),
    ("wrong type", "ksm:\n  run: yes\n", ":2:8: ksm.run:", "expected a whole number"),
    ("yaml bool sysctl", "sysctl:\n  vm.swappiness: on\n", ":2:18: sysctl.vm.swappiness:", "write 1 or 0"),
    ("negative", "hugepages:\n  2M: -5\n", ":2:7: hugepages.2M:", "out of range"),
    ("absurd", "ksm:\n  run: 7\n", ":2:8: ksm.run:", "out of range (0..2)"),
    ("unknown unit", "hugepages:\n  2M:\n    size: 16Q\n", ":3:11: hugepages.2M.size:", "expected a size"),
    ("unknown page size", "hugepages:\n  3X: 4\n", ":2:7: hugepages.3X:", "unknown page size"),
    ("no such sysctl", "sysctl:\n  vm.swapiness: 10\n", ":2:17: sysctl.vm.swapiness:", "no such sysctl"),
    ("dotdot sysctl", "sysctl:\n  vm...etc.passwd: 1\n", "sysctl.vm...etc.passwd:", "refused"),
    ("slash sysctl", "sysctl:\n  vm/../../etc: 1\n", "sysctl.vm/../../etc:", "refused"),
    ("empty part", "sysctl:\n  vm..swappiness: 1\n", "sysctl.vm..swappiness:", "refused"),
    ("reserve", "hugepages:\n  1G: 120\n", ":2:7: hugepages.1G:", "below the safe reserve"),
    ("no such node", "hugepages:\n  2M:\n    per_node: {0: 10, 7: 10}\n", ":3:23: hugepages.2M.per_node.7:", "node 7 does not exist"),
    ("thp word", "thp:\n  enabled: sometimes\n", ":2:12: thp.enabled:", "expected one of always, madvise, never"),
    ("mode unquoted", "hugetlbfs:\n  - path: /mnt/h\n    mode: 1770\n", "hugetlbfs[0].mode:", 'quoted string, e.g. mode: "1770"'),
    ("relative mount", "hugetlbfs:\n  - path: mnt/h\n", "hugetlbfs[0].path:", "absolute path"),
    ("duplicate key", "sysctl:\n  vm.swappiness: 10\n  vm.swappiness: 20\n", ":3:3: sysctl.vm.swappiness:", "duplicate key"),
    ("advisor owns pages_to_scan", "ksm:\n  advisor_mode: scan-time\n  pages_to_scan: 10\n", "ksm.pages_to_scan:", "EINVAL"),
    ("no such user", "hugetlbfs:\n  - path: /mnt/h\n    owner: nosuchuser\n", "hugetlbfs[0]:", "no user named 'nosuchuser'"),
]


@pytest.mark.parametrize("name, text, where, what", CASES, ids=[c[0] for c in CASES])
def test_bad_profile(name, text, where, what, root, tmp_path, run_cli):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = tree(root)
    for command in ("apply", "plan", "verify"):
        code, out, err = run_cli("--root", root, command, str(path), "--json")
        assert code == 2, (command, err)
        assert out == ""
        assert err.startswith(f"kvmtune: error: {path}"), err
        assert where in err and what in err, err
        assert "Traceback" not in err
    assert tree(root) == before


def test_extends_loop(tmp_path, root, run_cli):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nsysctl:\n  vm.swappiness: 10\n")
    code, _, err = run_cli("--root", root, "apply", str(tmp_path / "a.yaml"))
    assert code == 2 and "extends loop: a.yaml -> b.yaml -> a.yaml" in err


def test_extends_child_wins(tmp_path, root, run_cli):
    import json

    (tmp_path / "base.yaml").write_text("sysctl:\n  vm.swappiness: 10\nksm:\n  run: 0\n  pages_to_scan: 200\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nksm:\n  run: 1\n")
    code, out, _ = run_cli("--root", root, "plan", str(tmp_path / "child.yaml"), "--json")
    changes = {c["target"]: c["after"] for c in json.loads(out)["changes"]}
    assert changes["ksm run"] == "1" and changes["ksm pages_to_scan"] == "200"
    assert changes["sysctl vm.swappiness"] == "10"


def test_missing_profile_names_the_shipped_ones(root, run_cli):
    code, _, err = run_cli("--root", root, "apply", "no-such-profile")
    assert code == 2 and "kvm-host" in err and "latency" in err


def test_force_overrides_the_reserve(tmp_path, root, run_cli):
    path = tmp_path / "big.yaml"
    path.write_text("hugepages:\n  1G: 120\n")
    code, _, err = run_cli("--root", root, "plan", str(path), "--force", "--json")
    assert code == 0, err


def test_shipped_profiles_are_valid_on_a_fixture(root, run_cli):
    import json

    for name in ("kvm-host", "dense", "latency"):
        code, out, err = run_cli("--root", root, "plan", name, "--json")
        assert code == 0, err
        assert json.loads(out)["failed"] is False
