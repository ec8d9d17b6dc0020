"""Every class of bad profile: exit 2, file:line:column and key path, nothing touched."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.test_apply import tree
from tests.support.failure import failure_object


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
    ("wrong type", "ksm:\n  run: true\n", ":2:8: ksm.run:", "expected a whole number"),
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

# Input that ended in exit 3 or meant something else than it says (issue 17, item 6).
HOSTILE = [
    ("merge key", "sysctl:\n  <<: {vm.swappiness: 10}\n", ":2:3: sysctl.<<:", "merge keys (<<) are not allowed"),
    ("merge key at the top", "<<: {sysctl: {vm.swappiness: 10}}\n", ":1:1: <<:", "merge keys (<<) are not allowed"),
    ("superscript size", "hugepages:\n  2M:\n    size: \u00b2M\n", ":3:11: hugepages.2M.size:", "expected a size"),
    ("arabic size", "hugepages:\n  2M:\n    size: \u0663M\n", ":3:11: hugepages.2M.size:", "expected a size"),
    ("superscript page size", "hugepages:\n  \u00b2M: 4\n", ":2:7: hugepages.\u00b2M:", "unknown page size"),
    ("superscript node", "hugepages:\n  2M:\n    per_node: {\u00b2: 4}\n", "hugepages.2M.per_node.\u00b2:",
     "node ids are numbers"),
    ("superscript percent", "hugetlbfs:\n  - path: /mnt/h\n    size: \u00b9%\n", "hugetlbfs[0].size:", "expected a size"),
    ("sexagesimal", "sysctl:\n  vm.swappiness: 1:30\n", ":2:18: sysctl.vm.swappiness:", "quote it"),
    ("sexagesimal count", "hugepages:\n  2M: 1:30\n", ":2:7: hugepages.2M:", "quote it"),
    ("octal", "sysctl:\n  vm.swappiness: 0777\n", ":2:18: sysctl.vm.swappiness:", "plain decimal"),
    ("hex", "ksm:\n  run: 0x1\n", ":2:8: ksm.run:", "plain decimal"),
    ("underscores", "ksm:\n  pages_to_scan: 1_000\n", ":2:18: ksm.pages_to_scan:", "plain decimal"),
    ("yaml 1.2 octal", "ksm:\n  pages_to_scan: 0o17\n", "ksm.pages_to_scan:", "plain decimal"),
    ("infinity", "hugepages:\n  2M:\n    percent: .inf\n", "hugepages.2M.percent:", "decimal number"),
    ("exponent", "hugepages:\n  2M:\n    percent: 1e1\n", "hugepages.2M.percent:", "decimal number"),
    ("timestamp", "sysctl:\n  vm.swappiness: 2001-12-14\n", "sysctl.vm.swappiness:", "date in YAML 1.1"),
    ("yes", "ksm:\n  run: yes\n", ":2:8: ksm.run:", "write true or false"),
    ("off", "cpus:\n  isolated: 2-3\n  irqbalance: off\n", "cpus.irqbalance:", "write true or false"),
    ("boolean key", "hugepages:\n  2M:\n    per_node: {on: 4}\n", "hugepages.2M.per_node.on:", "write true or false"),
    ("binary tag", "sysctl:\n  vm.swappiness: !!binary aGVsbG8=\n", ":2:18: sysctl.vm.swappiness:", "YAML tags"),
    ("int tag", "sysctl:\n  vm.swappiness: !!int \"0x10\"\n", ":2:18: sysctl.vm.swappiness:", "YAML tags"),
    ("set tag", "sysctl: !!set {vm.swappiness}\n", ":1:9: sysctl:", "YAML tags"),
    ("python tag", "sysctl:\n  vm.swappiness: !!python/name:os.system ''\n", "sysctl.vm.swappiness:", "YAML tags"),
    ("optional and required", "sysctl:\n  vm.swappiness: 10\n  -vm.swappiness: 20\n", ":3:3: sysctl.-vm.swappiness:",
     "vm.swappiness is also set at"),
]


@pytest.mark.parametrize("name, text, where, what", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_profile(name, text, where, what, root, tmp_path, run_cli):
    test_bad_profile(name, text, where, what, root, tmp_path, run_cli)


@pytest.mark.parametrize("name, text, where, what", CASES, ids=[c[0] for c in CASES])
def test_bad_profile(name, text, where, what, root, tmp_path, run_cli):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = tree(root)
    for command in ("apply", "plan", "verify"):
        code, out, err = run_cli("--root", root, command, str(path), "--json")
        assert code == 2, (command, err)
        failure_object(code, out, err)  # one object for Ansible, the message on stderr
        assert err.startswith(f"kvmtune: error: {path}"), err
        assert where in err and what in err, err
        assert "Traceback" not in err
        assert printable(err), err
    assert tree(root) == before


def printable(text: str) -> bool:
    """Nothing a terminal would act on: no control character but the line ends."""
    return all(c.isprintable() or c == "\n" for c in text)


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


def test_an_optional_key_in_a_child_replaces_the_required_one_of_its_base(tmp_path, root, run_cli):
    import json

    (tmp_path / "base.yaml").write_text("sysctl:\n  vm.swappiness: 10\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nsysctl:\n  -vm.swappiness: 20\n")
    code, out, err = run_cli("--root", root, "plan", str(tmp_path / "child.yaml"), "--json")
    assert code == 0, err
    changes = [c for c in json.loads(out)["changes"] if c["target"] == "sysctl vm.swappiness"]
    assert [c["after"] for c in changes] == ["20"]


@pytest.mark.parametrize("ref", ["\x1b[31mred\x1b[0m", "\x1b]0;owned\x07.yaml", "a\u202eb", "x\x9b2J",
                                 "dir/\x1b[2J.yaml"])
def test_an_extends_value_is_never_echoed_raw(ref, tmp_path, root, run_cli):
    import json

    path = tmp_path / "child.yaml"
    path.write_text("extends: " + json.dumps(ref) + "\nsysctl:\n  vm.swappiness: 10\n")
    before = tree(root)
    code, out, err = run_cli("--root", root, "apply", str(path))
    assert code == 2 and out == ""
    assert ":1:10: extends:" in err
    assert printable(err), repr(err)
    assert tree(root) == before


def test_a_file_named_by_extends_is_judged_without_quoting_it(tmp_path, root, run_cli):
    """A file that is not a profile (extends: /etc/shadow) is named, never quoted: not its keys,
    not its values, not a line of it."""
    secret = tmp_path / "secret"
    secret.write_text("password: 0777\ntoken: <<\nkey: !!binary aGk=\n")
    path = tmp_path / "child.yaml"
    path.write_text(f"extends: {secret}\n")
    code, _, err = run_cli("--root", root, "plan", str(path))
    assert code == 2 and "not a profile" in err
    for word in ("password", "0777", "token", "binary", "aGk"):
        assert word not in err


# Where a value goes, and values that are wrong in every one of those places.
POSITIONS = ["sysctl:\n  vm.swappiness: {v}\n", "ksm:\n  run: {v}\n", "thp:\n  enabled: {v}\n",
             "hugepages:\n  2M: {v}\n", "hugepages:\n  2M:\n    size: {v}\n",
             "hugepages:\n  2M:\n    per_node:\n      0: {v}\n", "hugepages:\n  1G:\n    percent: {v}\n",
             "hugetlbfs:\n  - path: /mnt/h\n    size: {v}\n", "hugetlbfs:\n  - path: {v}\n",
             "cpus:\n  isolated: {v}\n", "power:\n  governor: {v}\n", "kvm_modules:\n  kvm_intel:\n    nested: {v}\n",
             "extends: {v}\n", "{v}: 1\n", "sysctl:\n  {v}: 1\n", "hugepages:\n  {v}: 4\n"]
BAD = ["\u00b2M", "\u0663", "\uff17G", "1:30", "0777", "0x1F", "0o17", "1_000", ".inf", ".nan", "1e3",
       "2001-12-14", "yes", "off", "On", "!!binary aGk=", '!!int "3"', "!!python/object:os.system x", "!!set {a}",
       "*a", "<<", "=", "[1, 2]", "{a: 1}", "{<<: {a: 1}}", '"\\e[31m"', '"a\\u202eb"', '"\\x9b2J"', "~",
       "'two\nlines'", "[", "&a [1]"]
VALID = ["", "sysctl:\n  kernel.numa_balancing: 0\n", "ksm:\n  run: 1\n", "thp:\n  enabled: madvise\n"]


def _run(argv, capsys):
    from kvmtune.entry import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@given(position=st.sampled_from(POSITIONS), bad=st.sampled_from(BAD), valid=st.sampled_from(VALID),
       bad_first=st.booleans())
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_malformed_profile_is_exit_2_and_changes_nothing(position, bad, valid, bad_first, root, tmp_path,
                                                             capsys):
    text = position.format(v=bad)
    text = text + valid if bad_first else valid + text
    if valid and text.count(valid.partition(":")[0] + ":") > 1:
        return  # the same section twice is refused too, but for another reason than the value
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = tree(root)
    code, out, err = _run(["--root", root, "apply", str(path)], capsys)
    assert (code, out) == (2, ""), (text, err)
    assert err.startswith(f"kvmtune: error: {path}") and printable(err), (text, err)
    assert "Traceback" not in err and "internal error" not in err
    assert tree(root) == before, text


@given(data=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_any_text_at_all_is_a_plan_or_exit_2(data, root, tmp_path, capsys):
    path = tmp_path / "any.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    before = tree(root)
    code, out, err = _run(["--root", root, "plan", str(path)], capsys)
    assert code in (0, 2), (data, err)
    assert printable(err) and "internal error" not in err, (data, err)
    assert tree(root) == before


@pytest.mark.parametrize("value", ["'two\n    lines'", '"two\n    lines"', "two\n    lines", ">\n    two\n    lines"])
def test_a_value_yaml_would_fold_is_refused(value, root, tmp_path, capsys):
    path = tmp_path / "fold.yaml"
    path.write_text(f"sysctl:\n  vm.swappiness: {value}\n")
    code, out, err = _run(["--root", root, "plan", str(path)], capsys)
    assert code == 2 and "spanning lines" in err, err
