"""Invariants over generated profiles (hypothesis), on copies of a fixture tree."""

import json
import shutil

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.fixtures.synthetic import host as synthetic_host, write_tree
from tests.test_apply import tree
from tests.support.failure import failure_object

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "host"
    files = synthetic_host()
    files["etc/fstab"] = "# static file system information\nUUID=1 / ext4 defaults 0 1\n"
    return write_tree(str(root), files)


def fresh(template, tmp_path_factory):
    dest = tmp_path_factory.mktemp("case") / "host"
    shutil.copytree(template, dest)
    return str(dest)


pool = st.one_of(st.integers(0, 64), st.builds(lambda n: f"{n * 2}M", st.integers(0, 32)))
profiles = st.fixed_dictionaries({}, optional={
    "sysctl": st.fixed_dictionaries({}, optional={
        "vm.swappiness": st.integers(0, 100),
        "vm.dirty_background_ratio": st.integers(1, 50),
        "kernel.numa_balancing": st.integers(0, 1)}),
    "hugepages": st.fixed_dictionaries({}, optional={
        "2M": pool,
        "1G": st.fixed_dictionaries({"per_node": st.fixed_dictionaries(
            {}, optional={0: st.integers(0, 4), 1: st.integers(0, 4)})}).filter(lambda d: d["per_node"])}),
    "ksm": st.fixed_dictionaries({}, optional={
        "run": st.integers(0, 1), "pages_to_scan": st.integers(0, 5000),
        "sleep_millisecs": st.integers(0, 1000), "merge_across_nodes": st.integers(0, 1),
        "use_zero_pages": st.integers(0, 1)}),
    "thp": st.fixed_dictionaries({}, optional={
        "enabled": st.sampled_from(["always", "madvise", "never"]),
        "defrag": st.sampled_from(["always", "defer", "defer+madvise", "madvise", "never"])}),
    "hugetlbfs": st.lists(st.fixed_dictionaries(
        {"path": st.sampled_from(["/dev/hugepages2M", "/mnt/huge"]), "pagesize": st.just("2M")},
        optional={"size": st.sampled_from(["64M", "50%"]), "mode": st.sampled_from(["1770", "755"])}),
        max_size=1),
})


@SETTINGS
@given(profile=profiles)
def test_apply_twice_is_apply_once_and_rollback_restores(profile, template, tmp_path_factory, run_cli):
    root = fresh(template, tmp_path_factory)
    path = tmp_path_factory.mktemp("p") / "gen.yaml"
    path.write_text(yaml.safe_dump(profile))
    original = tree(root)
    code, out, err = run_cli("--root", root, "apply", str(path), "--json")
    assert code == 0, err
    after_once = tree(root)
    code, out, err = run_cli("--root", root, "apply", str(path), "--json")
    assert code == 0 and json.loads(out)["changed"] is False, out
    assert tree(root) == after_once
    code, out, err = run_cli("--root", root, "rollback", "--json")
    assert code == 0, err
    assert tree(root) == original


FAULTS = [
    ("sysctl", {"vm.swapiness": 1}),
    ("sysctl", {"vm.swappiness": True}),
    ("sysctl", {"../etc/passwd": 1}),
    ("sysctl", {"vm..swappiness": 1}),
    ("hugepages", {"2M": -1}),
    ("hugepages", {"2M": {"size": "12Q"}}),
    ("hugepages", {"4K": 1}),
    ("hugepages", {"2M": {"per_node": {9: 1}}}),
    ("hugepages", {"1G": 10_000}),
    ("ksm", {"run": 3}),
    ("ksm", {"pages_to_scan": "fast"}),
    ("ksm", {"merge_accross_nodes": 0}),
    ("thp", {"enabled": "sometimes"}),
    ("thp", {"enable": "never"}),
    ("hugetlbfs", [{"path": "relative/path"}]),
    ("hugetlbfs", {"path": "/mnt/x"}),
    ("bogus_section", {}),
]


@SETTINGS
@given(profile=profiles, fault=st.sampled_from(FAULTS))
def test_malformed_profiles_exit_2_and_touch_nothing(profile, fault, template, tmp_path_factory, run_cli):
    root = fresh(template, tmp_path_factory)
    section, bad = fault
    broken = dict(profile)
    if isinstance(bad, dict) and isinstance(broken.get(section), dict):
        broken[section] = {**broken[section], **bad}
    else:
        broken[section] = bad
    path = tmp_path_factory.mktemp("p") / "bad.yaml"
    path.write_text(yaml.safe_dump(broken))
    original = tree(root)
    code, out, err = run_cli("--root", root, "apply", str(path), "--json")
    assert code == 2, (broken, out, err)
    failure_object(code, out, err)
    assert err.startswith(f"kvmtune: error: {path}")
    assert tree(root) == original
