"""Fleet report over many hosts' results, and the Prometheus textfile output."""

import json
import os

from prometheus_client.parser import text_string_to_metric_families



def check_json_file(run_cli, root, dest, *extra):
    code, out, err = run_cli("--root", str(root), "check", "--json", *extra)
    dest.write_text(out)
    return json.loads(out)


def test_report_over_files_tree_and_junk(run_cli, host_roots, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    check_json_file(run_cli, host_roots["synthetic-intel-vtx"], results / "good.json")
    check_json_file(run_cli, host_roots["synthetic-no-dev-kvm"], results / "bad.json")
    check_json_file(run_cli, host_roots["synthetic-hugepage-pools"], results / "pools.json")
    ksm = json.loads(check_json_file(run_cli, host_roots["synthetic-ksm-running"], tmp_path / "k.json") and
                     (tmp_path / "k.json").read_text())
    # ansible --tree writes the module result, with the report's keys at the top level...
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hv-ksm").write_text(json.dumps({"changed": False, **ksm}))
    # ...and a command task registers stdout holding the JSON.
    (tree / "hv-cmd").write_text(json.dumps({"rc": 0, "stdout": (results / "good.json").read_text()}))
    (tree / "hv-broken").write_text("{not json")
    (tree / "hv-other").write_text(json.dumps({"changed": True, "msg": "something else"}))
    code, out, _ = run_cli("report", str(results), str(tree), "--json")
    summary = json.loads(out)
    assert code == 1  # one host is not ready and two results are unreadable
    assert summary["counts"] == {"hosts": 5, "ready": 4, "not_ready": 1, "invalid": 2}
    assert summary["top_failing"] == [{"check": "kvm.device", "hosts": 1}]
    assert {b["path"].rsplit("/", 1)[1] for b in summary["invalid"]} == {"hv-broken", "hv-other"}
    assert any("not JSON" in b["error"] for b in summary["invalid"])
    assert summary["hugepages"]["2048"]["total"] == 2048 * 1 + 0
    assert summary["hugepages"]["1048576"]["total"] == 8
    assert summary["ksm_saved_bytes"] == 65280 * 4096
    shapes = {s["shape"]: len(s["hosts"]) for s in summary["numa_shapes"]}
    assert shapes == {"2 nodes x 4 CPUs, 64 GiB": 5}
    code, text, _ = run_cli("report", str(results), str(tree))
    assert "5 hosts: 4 ready, 1 not ready, 2 unreadable results" in text
    assert "unreadable: " in text and "hv-broken" in text


def test_report_of_a_missing_path_is_bad_usage(run_cli, tmp_path):
    code, _, err = run_cli("report", str(tmp_path / "nope"))
    assert code == 2 and "no such file or directory" in err


def test_prometheus_textfile_parses_and_is_atomic(run_cli, host_roots, tmp_path):
    target = tmp_path / "kvmtune.prom"
    code, out, _ = run_cli("--root", str(host_roots["synthetic-hugepage-pools"]), "check",
                           "--format", "prometheus", "--output", str(target))
    assert code == 0 and out == ""
    assert os.listdir(tmp_path) == ["kvmtune.prom"]
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert families["kvmtune_ready"].samples[0].value == 1
    status = {(s.labels["check"], s.labels["status"]): s.value for s in families["kvmtune_check_status"].samples}
    assert status[("memory.hugepages", "warn")] == 1 and status[("memory.hugepages", "pass")] == 0
    assert sum(v for (c, _), v in status.items() if c == "kvm.device") == 1
    total = {(s.labels.get("size_kb"), s.labels.get("node")): s.value for s in families["kvmtune_hugepages_total"].samples}
    assert total[("2048", None)] == 2048 and total[("2048", "1")] == 1024
    free = {(s.labels.get("size_kb"), s.labels.get("node")): s.value for s in families["kvmtune_hugepages_free"].samples}
    assert free[("1048576", "0")] == 4


def test_prometheus_ksm_saved_bytes(run_cli, host_roots):
    code, out, _ = run_cli("--root", str(host_roots["synthetic-ksm-running"]), "check", "--format", "prometheus")
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert families["kvmtune_ksm_saved_bytes"].samples[0].value == 65280 * 4096
    pages = {s.labels["kind"]: s.value for s in families["kvmtune_ksm_pages"].samples}
    assert pages == {"shared": 256, "sharing": 65280, "unshared": 0, "volatile": 0}


def test_report_names_why_each_host_is_not_ready_and_groups_the_reasons(run_cli, host_roots, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for i in range(3):
        check_json_file(run_cli, host_roots["synthetic-no-dev-kvm"], results / f"bad{i}.json")
    check_json_file(run_cli, host_roots["synthetic-intel-vtx"], results / "good.json")
    check_json_file(run_cli, host_roots["synthetic-nested-guest"], results / "guest.json")
    code, out, _ = run_cli("report", str(results))
    assert code == 1
    assert "kvm.device fail: /dev/kvm does not exist" in out
    assert "3 hosts: kvm.device fail (/dev/kvm does not exist)" in out
    assert "see its report" not in out
    code, out, _ = run_cli("report", str(results), "--json", "--strict")
    summary = json.loads(out)
    assert summary["counts"]["not_ready"] == 4  # strict: the nested guest's warnings count too
    assert summary["reasons"][0] == {"check": "kvm.device", "status": "fail", "detail": "/dev/kvm does not exist",
                                     "hosts": [str(results / f"bad{i}.json") for i in range(3)]}
    assert any(r["status"] == "warn" for r in summary["reasons"])


def test_a_host_its_own_check_judged_strictly_is_shown_with_its_reasons(run_cli, host_roots, tmp_path):
    """A result made with check --strict says not ready because of warnings; report (without
    --strict) names those warnings instead of "see its report"."""
    results = tmp_path / "results"
    results.mkdir()
    own = check_json_file(run_cli, host_roots["synthetic-nested-guest"], results / "strict.json", "--strict")
    assert own["ready"] is False and not any(c["status"] == "fail" for c in own["checks"] if c["id"] != "ready")
    warned = [c for c in own["checks"] if c["status"] == "warn"]
    code, out, _ = run_cli("report", str(results))
    assert code == 1
    assert "see its report" not in out
    for c in warned:
        assert f"{c['id']} warn: {c['detail']}" in out
    code, out, _ = run_cli("report", str(results), "--json")
    (host,) = json.loads(out)["hosts"]
    assert host["ready"] is False and {r["check"] for r in host["reasons"]} >= {c["id"] for c in warned}


def test_report_never_prints_a_result_s_control_characters(run_cli, host_roots, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    own = check_json_file(run_cli, host_roots["synthetic-no-dev-kvm"], results / "a.json")
    own["host"]["hostname"] = "hv\x1b]0;owned\x07\x1b[2J01"
    for c in own["checks"]:
        c["detail"] = "\x1b[31m" + (c.get("detail") or "") + "\u202e\x9b"
    (results / "a.json").write_text(json.dumps(own))
    (results / "b\x1b[1m.json").write_text("{")
    code, out, err = run_cli("report", str(results))
    assert code == 1
    assert "hv\\x1b]0;owned\\x07\\x1b[2J01" in out
    assert all(c.isprintable() or c == "\n" for c in out + err), repr(out)
