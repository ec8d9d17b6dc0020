"""check --for: workload intents decide readiness through one table (kvmtune.checks.intents)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from kvmtune.checks.intents import INTENTS
from tests.conftest import by_id

SCHEMA = json.loads((Path(__file__).parent.parent / "kvmtune" / "schema" /
                     "check-report.schema.json").read_text())
NO_IOMMU = "synthetic-nested-guest"  # a guest without a virtual IOMMU: no groups


@pytest.mark.parametrize("given, nearest", [("passtrough", "passthrough"), ("sriov,gpu", None),
                                            ("SRIOV", None)])
def test_unknown_intent_is_bad_input_naming_the_known_ones(run_cli, host_roots, given, nearest):
    code, out, err = run_cli("--root", str(host_roots[NO_IOMMU]), "check", "--for", given)
    assert code == 2 and out == ""
    assert "--for" in err and "known: general, passthrough, sriov" in err
    if nearest:
        assert f"did you mean {nearest!r}" in err


def test_unknown_intent_is_judged_before_the_root(run_cli, tmp_path):
    code, _, err = run_cli("--root", str(tmp_path / "absent"), "check", "--for", "nope")
    assert code == 2 and "unknown intent 'nope'" in err


def test_passthrough_without_iommu_groups_fails_and_is_not_ready(check_json, host_roots):
    root = host_roots[NO_IOMMU]
    code, plain = check_json(root)
    assert code == 0 and plain["ready"] is True
    assert by_id(plain)["iommu"]["status"] == "warn"  # plain check: today's verdict
    assert plain["intents"] == ["general"] and plain["ready_for"] == ["general"]

    code, report = check_json(root, "--for", "passthrough")
    jsonschema.validate(report, SCHEMA)
    assert code == 1 and report["ready"] is False
    assert report["intents"] == ["general", "passthrough"]
    assert report["ready_for"] == ["general"]
    checks = by_id(report)
    assert checks["iommu"]["status"] == "fail"
    assert "blocks passthrough" in checks["iommu"]["detail"]
    assert checks["ready"]["data"]["blocking"] == ["iommu"]
    assert report["summary"]["fail"] == plain["summary"]["fail"] + 1
    # general's checks ran as before; the intent only added its own
    added = [c["id"] for c in report["checks"] if c["id"] not in by_id(plain)]
    assert sorted(added) == sorted(INTENTS["passthrough"].adds)


def test_intents_repeat_comma_separate_and_keep_general_first(check_json, host_roots):
    _, report = check_json(host_roots[NO_IOMMU], "--for", "sriov,passthrough", "--for", "general,sriov")
    assert report["intents"] == ["general", "sriov", "passthrough"]
    assert report["ready_for"] == ["general"]


def test_ready_for_an_intent_when_its_requirements_hold(check_json, host_roots):
    code, report = check_json(host_roots["synthetic-intel-vtx"], "--for", "passthrough")
    assert code == 0 and report["ready_for"] == ["general", "passthrough"]
    # the same host has no SR-IOV device: not ready for sriov, and it says why
    code, report = check_json(host_roots["synthetic-intel-vtx"], "--for", "passthrough,sriov")
    assert code == 1 and report["ready_for"] == ["general", "passthrough"]
    assert "no SR-IOV capable device" in by_id(report)["sriov"]["detail"]


def test_a_host_not_ready_for_general_is_ready_for_nothing(check_json, host_roots):
    _, report = check_json(host_roots["synthetic-no-dev-kvm"], "--for", "passthrough")
    assert report["ready_for"] == []


def test_text_names_the_intents_in_the_header(run_cli, host_roots):
    code, out, _ = run_cli("--root", str(host_roots[NO_IOMMU]), "check", "--for", "passthrough")
    assert code == 1
    head = out.splitlines()[0]
    assert head.startswith("kvmtune check") and "for general, passthrough" in head
    code, out, _ = run_cli("--root", str(host_roots[NO_IOMMU]), "check")
    assert code == 0 and " for " not in out.splitlines()[0]


def test_the_table_names_only_checks_that_exist_and_the_schema_knows_every_intent():
    from kvmtune.checks import REGISTRY
    from kvmtune.checks.intents import INTENTS
    from kvmtune.checks.model import STATUSES

    for intent in INTENTS.values():
        assert set(intent.adds) <= set(REGISTRY), intent.name
        assert set(intent.blocking) <= set(REGISTRY), intent.name
        assert all(set(s) <= set(STATUSES) for s in intent.blocking.values())
    for key in ("intents", "ready_for"):
        assert SCHEMA["properties"][key]["items"]["enum"] == list(INTENTS)


def test_plain_check_runs_and_reads_nothing_only_an_intent_needs(host_roots):
    """--for adds only the checks it names (and their reads): plain check keeps today's."""
    from kvmtune.checks import REGISTRY, read_phase, selected
    from kvmtune.checks.intents import GENERAL, INTENTS, ON_DEMAND
    from kvmtune.host.door import Host

    plain = selected([], [])
    assert not set(plain) & ON_DEMAND
    for name, intent in INTENTS.items():
        assert set(selected([], [], (GENERAL, name))) == set(plain) | set(intent.adds)
    host = Host(str(host_roots["synthetic-intel-vtx"]))
    read = read_phase(host, [], [], host_json=True).names
    for check_id in ON_DEMAND:
        own = set(REGISTRY[check_id][3]) - {f for c in plain for f in REGISTRY[c][3]}
        assert own and not own & read, check_id


def test_only_names_an_on_demand_check_without_an_intent():
    from kvmtune.checks import selected
    from kvmtune.checks.intents import ON_DEMAND

    for check_id in ON_DEMAND:
        assert selected([check_id], []) == [check_id]


def write_profile(tmp_path, text: str):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return str(path)


def test_verify_runs_the_profiles_intents_and_fails_when_they_do(run_cli, host_roots, tmp_path):
    profile = write_profile(tmp_path, "description: passthrough host\nintents: [passthrough]\n")
    code, out, _ = run_cli("--root", str(host_roots[NO_IOMMU]), "verify", profile, "--json")
    result = json.loads(out)
    assert code == 1 and result["drift"] == []
    assert result["intents"] == ["general", "passthrough"] and result["ready_for"] == ["general"]
    checks = {c["id"]: c for c in result["intent_checks"]}
    # the intent's own checks and those readiness needs at all, not all of check
    assert set(checks) == {"kvm.device", "kvm.functional", "iommu", "devices.vfio", "memlock", "iommu.groups",
                           "pci.acs"}
    assert checks["iommu"]["status"] == "fail" and "iommu fail" in result["msg"]
    code, out, _ = run_cli("--root", str(host_roots[NO_IOMMU]), "verify", profile)
    assert code == 1 and "FAIL" in out and "iommu" in out and "fix:" in out
    code, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "verify", profile, "--json")
    assert code == 0 and json.loads(out)["ready_for"] == ["general", "passthrough"]


def test_verify_without_intents_judges_drift_alone(run_cli, host_roots, tmp_path):
    profile = write_profile(tmp_path, "description: plain\n")
    code, out, _ = run_cli("--root", str(host_roots[NO_IOMMU]), "verify", profile, "--json")
    assert code == 0 and "intents" not in json.loads(out)


@pytest.mark.parametrize("text, where, says", [
    ("intents: [passthru]\n", ":1:11: intents[0]", "unknown intent 'passthru'; expected one of: general"),
    ("intents: passthrough\n", ":1:10: intents", "expected a list of intents"),
    ("intents: [1]\n", ":1:11: intents[0]", "unknown intent int 1"),
])
def test_a_profiles_unknown_intent_is_exit_2_with_its_place(run_cli, tmp_path, text, where, says):
    code, out, err = run_cli("--root", str(tmp_path), "verify", write_profile(tmp_path, text))
    assert code == 2 and out == ""
    assert where in err and says in err


def test_a_profile_declares_intents_once_each_and_extends_keeps_them(tmp_path):
    from kvmtune.profile import load_profile

    base = write_profile(tmp_path, "intents: [sriov, passthrough, sriov]\n")
    assert load_profile(base).intents == ("sriov", "passthrough")
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {base}\nsysctl: {{vm.swappiness: 10}}\n")
    assert load_profile(str(child)).intents == ("sriov", "passthrough")


def test_report_says_per_host_which_intents_it_is_ready_for(run_cli, host_roots, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for name, extra in (("synthetic-nested-guest", ["--for", "passthrough"]),
                        ("synthetic-intel-vtx", ["--for", "passthrough"]), ("synthetic-amd-sev", [])):
        code, out, _ = run_cli("--root", str(host_roots[name]), "check", "--json", *extra)
        (results / f"{name}.json").write_text(out)
    old = json.loads((results / "synthetic-amd-sev.json").read_text())
    del old["intents"], old["ready_for"]  # a result from before intents: judged for general alone
    (results / "old.json").write_text(json.dumps(old))
    code, out, _ = run_cli("report", str(results), "--json")
    summary = json.loads(out)
    hosts = {h["path"].rsplit("/", 1)[1]: h for h in summary["hosts"]}
    assert hosts["synthetic-nested-guest.json"]["ready_for"] == ["general"]
    assert hosts["synthetic-nested-guest.json"]["intents"] == ["general", "passthrough"]
    assert hosts["synthetic-intel-vtx.json"]["ready_for"] == ["general", "passthrough"]
    assert hosts["old.json"]["intents"] == ["general"]
    assert hosts["old.json"]["ready_for"] == (["general"] if old["ready"] else [])
    assert summary["intents"]["passthrough"] == {"judged": 2, "ready": 1}
    code, out, _ = run_cli("report", str(results))
    assert "passthrough 1 of 2" in out and "(ready for general only)" in out


def test_report_strict_takes_every_intent_from_a_host_it_finds_not_ready(run_cli, host_roots, tmp_path):
    code, out, _ = run_cli("--root", str(host_roots["synthetic-intel-vtx"]), "check", "--json", "--for", "passthrough")
    report = json.loads(out)
    report["checks"][0]["status"] = "warn"  # a warning this result's own check did not count
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    _, out, _ = run_cli("report", str(path), "--json", "--strict")
    assert json.loads(out)["hosts"][0]["ready_for"] == []
    _, out, _ = run_cli("report", str(path), "--json")
    assert json.loads(out)["hosts"][0]["ready_for"] == ["general", "passthrough"]
