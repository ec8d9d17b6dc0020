"""The KSM pressure policy: decisions over meminfo samples, the profile grammar, and the
decision carried out through the engine on a snapshot tree (journaled, recorded, verified,
rolled back). The live test, with a real allocation, is in test_ksm_policy_live.py."""

import json

import pytest

from kvmtune.host.writable import WritableHost as Host
from kvmtune.tune.ksm_decide import Policy, check_record, decide, decide_series, to_record
from tests.fixtures.synthetic import host as synthetic_host, ksm_files, write_tree

GIB = 1 << 20  # kB


def sample(avail_gib: float, total_gib: int = 100) -> dict:
    return {"MemTotal": total_gib * GIB, "MemAvailable": int(avail_gib * GIB)}


# -- the pure decision ---------------------------------------------------------------

def test_off_above_the_threshold_on_below():
    p = Policy(20.0, 5.0, 64, 1250)
    assert decide(p, sample(21), running=False).run == 0
    assert decide(p, sample(20), running=False).run == 0  # at the threshold: not below it
    on = decide(p, sample(19.9), running=False)
    assert on.run == 1 and on.start_kb == 20 * GIB and on.stop_kb == 25 * GIB


def test_hysteresis_keeps_it_on_until_above_threshold_plus_band():
    p = Policy(20.0, 5.0, 64, 1250)
    assert decide(p, sample(24), running=True).run == 1  # in the band, coming from on
    assert decide(p, sample(24), running=False).run == 0  # in the band, coming from off
    assert decide(p, sample(25), running=True).run == 1  # the band's edge still holds
    assert decide(p, sample(25.1), running=True).run == 0
    series = decide_series(p, [sample(30), sample(19), sample(22), sample(24.9), sample(26), sample(22)])
    assert [d.run for d in series] == [0, 1, 1, 1, 0, 0]


def test_pages_to_scan_scales_with_pressure_between_bounds():
    p = Policy(20.0, 5.0, 64, 1250)
    just_below = decide(p, sample(19.999), running=False).pages_to_scan
    half = decide(p, sample(10), running=False).pages_to_scan
    empty = decide(p, sample(0), running=False).pages_to_scan
    assert just_below == 64  # at the threshold: the lower bound
    assert half == 64 + round(0.5 * (1250 - 64)) == 657
    assert empty == 1250  # nothing available: the upper bound, never beyond
    in_band = decide(p, sample(22), running=True)
    assert in_band.pages_to_scan == 64  # holding on in the band: the slowest scan
    assert decide(p, sample(30), running=True).pages_to_scan is None  # off: pages_to_scan left alone
    pages = [decide(p, sample(a / 10), running=False).pages_to_scan for a in range(0, 200, 7)]
    assert pages == sorted(pages, reverse=True) and all(64 <= n <= 1250 for n in pages)


def test_without_memavailable_ksmtuned_measure():
    p = Policy()
    old = {"MemTotal": 100 * GIB, "MemFree": 5 * GIB, "Buffers": 1 * GIB, "Cached": 4 * GIB}
    d = decide(p, old, running=False)
    assert d.available_kb == 10 * GIB and d.run == 1
    with pytest.raises(ValueError):
        decide(p, {"MemTotal": 100 * GIB}, running=False)


def test_defaults_are_the_peers():
    p = Policy()
    assert (p.threshold, p.pages_min, p.pages_max) == (20.0, 64, 1250)
    assert p.hysteresis == 100 / 16


def test_record_round_trip_and_grammar():
    p = Policy(20.0, 5.0, 64, 1250)
    rec = to_record(decide(p, sample(10), False)._replace(at="2026-12-07T15:00:00+0000"), p)
    assert check_record(json.loads(json.dumps(rec))) == rec
    for bad in ({**rec, "run": 2}, {**rec, "pages_to_scan": -1}, {**rec, "extra": 1}, {**rec, "run": True},
                {**rec, "policy": {"threshold": "20"}}):
        with pytest.raises(ValueError):
            check_record(bad)


# -- the profile -----------------------------------------------------------------------

@pytest.mark.parametrize("text,where,message", [
    ("ksm:\n  policy: pressure\n  run: 1\n", ":3:3: ksm.run:", "exclude each other"),
    ("ksm:\n  policy: pressure\n  pages_to_scan: 100\n", ":3:18: ksm.pages_to_scan:", "{min: 64, max: 1250}"),
    ("ksm:\n  threshold: 20%\n", ":2:3: ksm.threshold:", "add policy: pressure"),
    ("ksm:\n  pages_to_scan: {min: 1, max: 2}\n", "ksm.pages_to_scan:", "belongs to a policy"),
    ("ksm:\n  policy: greedy\n", ":2:11: ksm.policy:", "unknown policy 'greedy'"),
    ("ksm:\n  policy: pressure\n  threshold: 20\n", "ksm.threshold:", "a percent of RAM"),
    ("ksm:\n  policy: pressure\n  threshold: 120%\n", "ksm.threshold:", "out of range"),
    ("ksm:\n  policy: pressure\n  threshold: 80%\n  hysteresis: 30%\n", "ksm.hysteresis:", "more than all of RAM"),
    ("ksm:\n  policy: pressure\n  pages_to_scan: {min: 900, max: 100}\n", "ksm.pages_to_scan:", "above max"),
    ("ksm:\n  policy: pressure\n  pages_to_scan: {mn: 9}\n", "ksm.pages_to_scan.mn:", "did you mean 'min'"),
    ("ksm:\n  policy: pressure\n  advisor_mode: scan-time\n", "ksm.advisor_mode:", "keep one"),
])
def test_bad_policy_is_exit_2_with_file_line_key(run_cli, tmp_path, text, where, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, out, err = run_cli("--root", str(tmp_path), "plan", str(path))
    assert code == 2 and out == ""
    assert f"{path}{where}" in err if where.startswith(":") else where in err
    assert message in err


def test_policy_replaces_a_base_profiles_run(tmp_path):
    from kvmtune.profile import load_profile

    (tmp_path / "child.yaml").write_text("extends: kvm-host\nksm:\n  policy: pressure\n  threshold: 15%\n")
    profile = load_profile(str(tmp_path / "child.yaml"))
    assert "run" not in profile.ksm and profile.ksm_policy.threshold == 15.0
    (tmp_path / "fixed.yaml").write_text(f"extends: {tmp_path / 'child.yaml'}\nksm:\n  run: 0\n")
    fixed = load_profile(str(tmp_path / "fixed.yaml"))
    assert fixed.ksm_policy is None and fixed.ksm["run"][0] == 0


# -- through the engine, on a tree -----------------------------------------------------

POLICY = "ksm:\n  policy: pressure\n  threshold: 20%\n  hysteresis: 5%\n  pages_to_scan: {min: 100, max: 1100}\n"


def set_available(root, avail_gib: float, total_gib: int = 128) -> None:
    write_tree(str(root), {"proc/meminfo": f"MemTotal: {total_gib * GIB} kB\nMemFree: {int(avail_gib * GIB)} kB\n"
                                           f"MemAvailable: {int(avail_gib * GIB)} kB\n"})


@pytest.fixture
def tree(tmp_path):
    files = synthetic_host()
    files.update(ksm_files(run=0))
    root = write_tree(str(tmp_path / "host"), files)
    (tmp_path / "policy.yaml").write_text(POLICY)
    return root, str(tmp_path / "policy.yaml")


def ksm_knob(root, name) -> str:
    with open(f"{root}/sys/kernel/mm/ksm/{name}") as f:
        return f.read().strip()


def state(root) -> dict:
    with open(f"{root}/var/lib/kvmtune/state.json") as f:
        return json.load(f)


def test_apply_decides_records_and_verify_judges_the_last_decision(run_cli, tree):
    root, profile = tree
    set_available(root, 12.8)  # 10 % of 128 GiB: below 20 %, half-way to nothing
    code, out, _ = run_cli("--root", root, "apply", profile, "--json")
    assert code == 0, out
    assert ksm_knob(root, "run") == "1" and ksm_knob(root, "pages_to_scan") == str(100 + 500)
    decision = state(root)["ksm_policy"]
    assert decision["run"] == 1 and decision["pages_to_scan"] == 600 and decision["at"]
    assert state(root)["records"]["ksm:run"]["original"] == "0"

    set_available(root, 100)  # memory came back; no policy run since
    code, out, _ = run_cli("--root", root, "verify", profile, "--json")
    assert code == 0, out  # the host holds the last decision: no drift
    run_change = next(c for c in json.loads(out)["changes"] if c["target"] == "ksm run")
    assert "last decision" in run_change["detail"]
    code, out, _ = run_cli("--root", root, "plan", profile, "--json")
    assert [c["after"] for c in json.loads(out)["changes"] if c["target"] == "ksm run"] == ["0"]  # a new decision

    write_tree(root, {"sys/kernel/mm/ksm/run": "0\n"})  # someone stops KSM behind the policy's back
    code, out, _ = run_cli("--root", root, "verify", profile, "--json")
    assert code == 1 and [d["target"] for d in json.loads(out)["drift"]] == ["ksm run"]


def test_policy_step_applies_only_its_knobs_and_rollback_restores(run_cli, tree):
    from kvmtune.profile import load_profile
    from kvmtune.tune import ksm_policy

    root, path = tree
    profile = load_profile(path)._replace(sysctl={"vm.swappiness": ("10", None)})
    host = Host(root)
    set_available(root, 100)
    first = ksm_policy.evaluate(host, profile)
    assert first.decision.run == 0 and not first.changed and "KSM off" in first.line()
    assert not ksm_policy.apply(host, profile).changed  # KSM is off already
    set_available(root, 6.4)  # 5 % available
    assert ksm_policy.evaluate(host, profile).decision.run == 1
    assert ksm_knob(root, "run") == "0"  # evaluate writes nothing
    applied = ksm_policy.apply(host, profile)
    assert applied.changed and applied.decision.run == 1 and "applied" in applied.line()
    assert ksm_knob(root, "run") == "1" and ksm_knob(root, "pages_to_scan") == str(100 + 750)
    with open(f"{root}/proc/sys/vm/swappiness") as f:
        assert f.read() == "60\n"  # the policy step touches nothing else of the profile
    assert state(root)["ksm_policy"]["run"] == 1

    set_available(root, 30)  # 23 %: in the band, stays on at the lowest rate
    held = ksm_policy.apply(host, profile)
    assert held.decision.run == 1 and held.decision.pages_to_scan == 100
    assert ksm_knob(root, "pages_to_scan") == "100"
    set_available(root, 40)
    off = ksm_policy.apply(host, profile)
    assert off.changed and off.decision.run == 0 and ksm_knob(root, "run") == "0"
    assert state(root)["ksm_policy"]["run"] == 0

    code, out, _ = run_cli("--root", root, "rollback", "--json")
    assert code == 0, out
    assert ksm_knob(root, "pages_to_scan") == "100" and ksm_knob(root, "run") == "0"


def test_a_new_decision_is_recorded_even_when_the_kernel_already_matches(tree):
    from kvmtune.profile import load_profile
    from kvmtune.tune import ksm_policy

    root, path = tree
    profile = load_profile(path)
    host = Host(root)
    set_available(root, 6.4)
    ksm_policy.apply(host, profile)
    write_tree(root, {"sys/kernel/mm/ksm/run": "0\n"})  # stopped by hand
    set_available(root, 100)  # and the policy now agrees: nothing to write, a decision to record
    out = ksm_policy.apply(host, profile)
    assert not out.changed and out.decision.run == 0
    assert state(root)["ksm_policy"]["run"] == 0


def test_ksmtuned_beside_the_policy_is_a_warning(tree, tmp_path):
    from kvmtune.profile import load_profile
    from kvmtune.tune import ksm_policy

    root, path = tree
    write_tree(root, {"proc/4242/comm": "ksmtuned\n"})
    set_available(root, 100)
    out = ksm_policy.evaluate(Host(root), load_profile(path))
    assert any("ksmtuned is running" in w for w in out.warnings)


def test_a_journal_with_a_bad_decision_is_refused(run_cli, tree):
    root, profile = tree
    set_available(root, 6.4)
    assert run_cli("--root", root, "apply", profile)[0] == 0
    data = state(root)
    data["ksm_policy"]["run"] = 7
    with open(f"{root}/var/lib/kvmtune/state.json", "w") as f:
        json.dump(data, f)
    code, _, err = run_cli("--root", root, "rollback")
    assert code == 2 and "ksm_policy" in err


def test_check_reports_the_policy_and_its_last_decision(run_cli, check_json, tree):
    root, profile = tree
    code, report = check_json(root, "--only", "ksm")
    assert "policy" not in report["checks"][0]["detail"]  # no policy ran: nothing said
    set_available(root, 6.4)
    write_tree(root, {"sys/kernel/mm/ksm/merge_across_nodes": "0\n"})  # else: the NUMA warning
    assert run_cli("--root", root, "apply", profile)[0] == 0
    _, report = check_json(root, "--only", "ksm")
    ksm = report["checks"][0]
    assert ksm["status"] == "info" and "policy pressure: on below 20%" in ksm["detail"]
    assert "last decision" in ksm["detail"] and "KSM on, pages_to_scan 850" in ksm["detail"]
    assert ksm["data"]["policy"]["last_decision"]["run"] == 1
    write_tree(root, {"sys/kernel/mm/ksm/run": "0\n"})
    _, report = check_json(root, "--only", "ksm")
    assert report["checks"][0]["status"] == "warn" and "something else changed KSM" in report["checks"][0]["detail"]


def test_the_policy_step_plans_no_other_section_even_one_added_after_it():
    """watch runs the policy alone: every section but the policy is cleared, including sections
    (vfio, iommu, sriov, boot, ...) that the clearing function never names."""
    from kvmtune.profile.model import Profile
    from kvmtune.tune.ksm_policy import policy_only

    defaults = Profile._defaults
    full = Profile("p", "p.yaml", "", {"vm.swappiness": ("1", None)}, {2048: object()}, True, (object(),),
                   {"run": ("1", None)}, False, {"enabled": ("always", None)}, ("p.yaml",),
                   **{f: object() for f in defaults})
    cut = policy_only(full)
    assert cut.ksm_policy is full.ksm_policy
    for f in defaults:
        if f != "ksm_policy":
            assert getattr(cut, f) == defaults[f], f
    assert (cut.sysctl, cut.hugepages, cut.hugetlbfs, cut.ksm, cut.thp) == ({}, {}, (), {}, {})
