"""kvmtune migration: fleets made of real captured hosts' check results, varied where no real
dump shows the case (TSC off by 100 and 1000 ppm, no TSC scaling, another vendor, an older
QEMU, huge pages exhausted); every domain and reason below is worked out by hand."""

import copy
import json
import random
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "kvmtune" / "schema" / "migration.schema.json").read_text())
F = 2097600  # the domain frequency, kHz
CASCADE = "Cascadelake-Server-v5"  # what cpu-models calls best for the Gold 6230 dump


def ppm_off(khz: int, ppm: int) -> int:
    return khz + khz * ppm // 1_000_000


@pytest.fixture(scope="module")
def real(host_roots):
    """check --json of two real hosts: a Xeon Gold 6230 (Cascade Lake) and an EPYC 7451."""
    from kvmtune.entry import main
    import contextlib
    import io

    out = {}
    for key, name in (("intel", "intel-gold6230-80c-4n-snc"), ("amd", "amd-epyc7451-96c-8n")):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            main(["--root", str(host_roots[name]), "check", "--json"])
        out[key] = json.loads(buf.getvalue())
    return out


def host(base: dict, name: str, khz: int = F, scaling: bool = False, qemu: str = "7.2.0", free_1g: int = 64,
         microcode: str = "0x5003604", drop_flag: str | None = None, spectre_v2: str | None = None) -> dict:
    r = copy.deepcopy(base)
    h = r["host"]
    h["hostname"] = name
    # The keys issue #21 fixes for host.migration.
    h["migration"] = {"tsc_khz": khz, "tsc_source": "kernel-log", "invariant_tsc": True, "tsc_scaling": scaling,
                      "clocksource": "tsc", "microcode": microcode, "kernel": "6.1.0-28-amd64", "qemu": qemu,
                      "libvirt": "9.0.0", "machine_types": [f"pc-q35-{qemu[:3]}"]}
    series = qemu.rsplit(".", 1)[0]
    h["qemu"] = {"installed": True, "binary": "/usr/bin/qemu-system-x86_64", "package": "qemu-system-x86",
                 "version": f"1:{series}+dfsg-1", "series": series}
    h["memory"]["hugepages"]["pools"] = {
        "2048": {"size_kb": 2048, "total": 1024, "free": 1024, "reserved": 0, "surplus": 0, "overcommit": 0, "nodes": {}},
        "1048576": {"size_kb": 1048576, "total": 64, "free": free_1g, "reserved": 0, "surplus": 0, "overcommit": 0,
                    "nodes": {}}}
    if drop_flag:
        h["cpu"]["flags"] = [f for f in h["cpu"]["flags"] if f != drop_flag]
    vulns = next(c for c in r["checks"] if c["id"] == "cpu.vulnerabilities")
    vulns.setdefault("data", {}).setdefault("states", {})
    if spectre_v2:
        vulns["data"]["states"]["spectre_v2"] = spectre_v2
    return r


def write(tmp_path: Path, results: list[dict], shuffle: int | None = None) -> Path:
    tree = tmp_path / "results"
    tree.mkdir(parents=True, exist_ok=True)
    names = list(range(len(results)))
    if shuffle is not None:
        random.Random(shuffle).shuffle(names)
    for i, r in zip(names, results):  # file names in another order than the hosts'
        (tree / f"r{i:03d}.json").write_text(json.dumps({"changed": False, **r}))
    return tree


def fleet(real) -> list[dict]:
    intel, amd = real["intel"], real["amd"]
    return [
        host(intel, "hv01"), host(intel, "hv02", microcode="0x5003302"), host(intel, "hv03", spectre_v2="Vulnerable"),
        host(intel, "hv04"),
        host(intel, "hv05", khz=ppm_off(F, 100)),  # 100 ppm off: inside
        host(intel, "hv06", khz=F - 2517),  # 1200 ppm below, no scaling: out
        host(intel, "hv07", khz=ppm_off(F, 1000), scaling=True),  # 1000 ppm off but scales: inside
        host(intel, "hv08", khz=ppm_off(F, 1000)),  # 1000 ppm off, no scaling: out
        host(intel, "hv09", qemu="6.2.0"),  # older QEMU: one way only
        host(intel, "hv10", free_1g=0),  # huge pages exhausted: still a member without --guest
        host(intel, "hv11", khz=F - 2517, qemu="6.2.0", drop_flag="avx512bw"),  # three reasons
        host(amd, "amd1", khz=2396400),  # another vendor, alone
    ]


def run(run_cli, tree, *extra):
    code, out, err = run_cli("migration", str(tree), "--json", *extra)
    result = json.loads(out)
    jsonschema.validate(result, SCHEMA)
    return code, result, err


def test_domains_exclusions_and_one_way_moves_match_the_hand_computed_answer(run_cli, real, tmp_path):
    code, result, _ = run(run_cli, write(tmp_path, fleet(real)))
    assert code == 1  # hosts outside every domain
    [domain] = result["domains"]
    assert domain["hosts"] == ["hv01", "hv02", "hv03", "hv04", "hv05", "hv07", "hv10"]
    assert domain["cpu_model"] == CASCADE and domain["tsc_khz"] == F and domain["tsc_scaling"] is False
    assert domain["qemu"] == {"min": "7.2.0", "max": "7.2.0"}
    assert domain["hugepages_free"]["1048576"] == {"hv01": 64, "hv02": 64, "hv03": 64, "hv04": 64, "hv05": 64,
                                                   "hv07": 64, "hv10": 0}
    assert domain["hugepages_free"]["2048"]["hv10"] == 1024
    reasons = {x["host"]: x["reasons"] for x in result["excluded"]}
    assert reasons == {
        "amd1": ["CPU vendor AuthenticAMD, the domain's is GenuineIntel: vendors never share a domain"],
        "hv06": ["tsc 2095.1 MHz, 1200 ppm from the domain's 2097.6 MHz, no TSC scaling"],
        "hv08": ["tsc 2099.7 MHz, 1000 ppm from the domain's 2097.6 MHz, no TSC scaling"],
        "hv09": ["QEMU 6.2 is older than 7.2 on 7 members: one-way only"],
        "hv11": ["tsc 2095.1 MHz, 1200 ppm from the domain's 2097.6 MHz, no TSC scaling",
                 f"lacks avx512bw for {CASCADE}", "QEMU 6.2 is older than 7.2 on 7 members: one-way only"],
    }
    assert result["one_way"] == [{"from": "hv09", "to": "domain 1",
                                  "reason": "QEMU 6.2 is older than 7.2 on 7 members: one-way only"}]
    warnings = "\n".join(result["warnings"])
    assert "domain 1: microcode differs (0x5003604 on 6, 0x5003302 on 1): hv02 unlike the other 6" in warnings
    assert "domain 1: mitigations differ (spectre_v2): hv03 unlike the other 6" in warnings


def test_the_partition_does_not_depend_on_the_order_of_the_files(run_cli, real, tmp_path):
    results = fleet(real) + [host(real["intel"], "hv00", qemu="6.1.0")]  # a second one-way host
    _, first, _ = run(run_cli, write(tmp_path / "a", results))
    _, second, _ = run(run_cli, write(tmp_path / "b", results[::-1], shuffle=7))
    assert first == second


def test_a_second_vendor_with_two_hosts_is_a_domain_of_its_own(run_cli, real, tmp_path):
    results = [host(real["intel"], "hv01"), host(real["intel"], "hv02"),
               host(real["amd"], "amd1", khz=2396400), host(real["amd"], "amd2", khz=2396400)]
    code, result, _ = run(run_cli, write(tmp_path, results))
    assert code == 0 and result["excluded"] == [] and result["one_way"] == []
    assert [d["hosts"] for d in result["domains"]] == [["amd1", "amd2"], ["hv01", "hv02"]]  # vendors by name
    amd = result["domains"][0]
    # cpu-models calls EPYC-v4 best for this dump (no QEMU captured), but the domain's QEMU is
    # 7.2, and EPYC-v4 is first in the table of 8.1 (7.2's own list is not tabulated): EPYC-v3.
    _, models, _ = run_cli("--root", str(REPO / "tests/fixtures/hosts/amd-epyc7451-96c-8n"), "cpu-models", "--json")
    assert json.loads(models)["recommended"]["model"] == "EPYC-v4"
    assert amd["cpu_model"] == "EPYC-v3"


def test_older_qemu_hosts_together_are_a_domain_that_moves_one_way(run_cli, real, tmp_path):
    intel = real["intel"]
    results = [host(intel, f"hv0{i}") for i in range(1, 4)] + [host(intel, f"old{i}", qemu="6.2.0") for i in (1, 2)]
    code, result, _ = run(run_cli, write(tmp_path, results))
    assert [d["hosts"] for d in result["domains"]] == [["hv01", "hv02", "hv03"], ["old1", "old2"]]
    assert result["domains"][1]["qemu"] == {"min": "6.2.0", "max": "6.2.0"}
    assert result["one_way"] == [{"from": "domain 2", "to": "domain 1",
                                  "reason": "QEMU 6.2 is older than 7.2 on 3 members: one-way only"}]
    assert code == 0  # every host is in a domain


def test_patch_releases_of_one_series_share_a_domain_and_span_its_qemu(run_cli, real, tmp_path):
    results = [host(real["intel"], "hv01", qemu="7.2.0"), host(real["intel"], "hv02", qemu="7.2.11")]
    _, result, _ = run(run_cli, write(tmp_path, results))
    assert result["domains"][0]["qemu"] == {"min": "7.2.0", "max": "7.2.11"}


def test_guest_shape_excludes_hosts_without_its_model_or_its_pages(run_cli, real, tmp_path):
    intel = real["intel"]
    results = [host(intel, f"hv0{i}") for i in range(1, 5)] + [
        host(intel, "hv10", free_1g=0), host(intel, "hv12", drop_flag="avx512bw"), host(intel, "hv13", free_1g=63)]
    code, result, _ = run(run_cli, write(tmp_path, results), "--guest", f"{CASCADE},64G,1G")
    assert code == 1
    assert [d["hosts"] for d in result["domains"]] == [["hv01", "hv02", "hv03", "hv04"]]
    assert result["domains"][0]["cpu_model"] == CASCADE
    assert {x["host"]: x["reasons"] for x in result["excluded"]} == {
        "hv10": ["0 1G huge pages free; the guest needs 64"],
        "hv12": [f"lacks avx512bw for {CASCADE}"],
        "hv13": ["63 1G huge pages free; the guest needs 64"]}
    # 4K pages need no pool: every host with the model can take it.
    _, result, _ = run(run_cli, write(tmp_path, results), "--guest", f"{CASCADE},64G,4K")
    assert [x["host"] for x in result["excluded"]] == ["hv12"]


@pytest.mark.parametrize("bad, says", [
    ("Cascadelake-Server-v5", "expected MODEL,RAM,PAGESIZE"),
    ("Cascadelake-Server-v5,64G,1G,x", "expected MODEL,RAM,PAGESIZE"),
    ("Cascadelake-Server-v9,64G,1G", "unknown CPU model 'Cascadelake-Server-v9' (did you mean Cascadelake-Server-v"),
    ("Cascadelake-Server-v5,64Q,1G", "RAM: expected a size"),
    ("Cascadelake-Server-v5,-1G,1G", "RAM: expected a size"),
    ("Cascadelake-Server-v5,1536M,1G", "RAM 1536M is not a whole number of 1G pages"),
    ("Cascadelake-Server-v5,64G,3M", "PAGESIZE: expected 4K, 2M or 1G"),
    ("Cascadelake-Server-v5,,1G", "expected MODEL,RAM,PAGESIZE"),
])
def test_a_bad_guest_shape_is_bad_usage(run_cli, tmp_path, bad, says):
    code, out, err = run_cli("migration", str(tmp_path), "--guest", bad)
    assert code == 2 and out == "" and says in err


def test_an_unreadable_result_is_outside_with_its_reason_and_old_results_say_what_they_lack(run_cli, real, tmp_path):
    tree = write(tmp_path, [host(real["intel"], "hv01"), host(real["intel"], "hv02")])
    (tree / "broken.json").write_text("{not json")
    before = copy.deepcopy(real["intel"])
    before["host"]["hostname"] = "old"
    before["host"].pop("migration", None)  # a result from before host.migration
    (tree / "old.json").write_text(json.dumps(before))
    code, result, _ = run(run_cli, tree)
    reasons = {x["host"].rsplit("/", 1)[-1]: x["reasons"] for x in result["excluded"]}
    assert code == 1 and reasons["broken.json"][0].startswith("not JSON")
    assert reasons["old"][0] == "TSC frequency unknown (no host.migration.tsc_khz) and no TSC scaling"


def test_strict_makes_a_warning_exit_1_and_text_names_everything(run_cli, real, tmp_path):
    results = [host(real["intel"], "hv01"), host(real["intel"], "hv02", microcode="0x5003302")]
    tree = write(tmp_path, results)
    code, _, _ = run(run_cli, tree)
    assert code == 0
    code, _, _ = run(run_cli, tree, "--strict")
    assert code == 1
    code, text, _ = run_cli("migration", str(write(tmp_path / "x", fleet(real))))
    assert code == 1
    assert "1 migration domain (7 hosts), 5 outside, 1 one-way move" in text
    assert f"CPU   {CASCADE}" in text and "TSC 2097.600 MHz" in text
    assert "hv06: tsc 2095.1 MHz, 1200 ppm from the domain's 2097.6 MHz, no TSC scaling" in text
    assert "hv09 -> domain 1: QEMU 6.2 is older than 7.2 on 7 members: one-way only" in text


# The partition on records alone: the rules of kvmtune.fleet.domains, edge by edge.
def _rec(name, khz, scaling=False, qemu=(7, 2, 0), vendor="GenuineIntel"):
    from kvmtune.fleet.hosts import FleetHost

    return FleetHost(name, vendor, "x86_64", {}, {"cpu": {}, "qemu": {}}, khz, scaling, qemu, {}, None, ())


def test_250_ppm_is_inside_and_251_is_not():
    from kvmtune.fleet.domains import partition, within

    assert within(ppm_off(F, 250), F) and not within(ppm_off(F, 251) + 1, F)
    [d] = partition([_rec("a", F), _rec("b", F), _rec("c", ppm_off(F, 251) + 1)])
    assert [h.name for h in d["hosts"]] == ["a", "b"]


def test_hosts_400_ppm_apart_share_the_domain_of_the_frequency_between_them():
    from kvmtune.fleet.domains import partition

    low, mid, high = F, ppm_off(F, 200), ppm_off(F, 400)
    [d] = partition([_rec("low", low), _rec("high", high), _rec("mid", mid)])
    assert d["tsc_khz"] == mid and [h.name for h in d["hosts"]] == ["high", "low", "mid"]


def test_ties_go_to_the_newer_series_then_the_frequency_most_hosts_have():
    from kvmtune.fleet.domains import partition

    hosts = [_rec("a", F, qemu=(6, 2, 0)), _rec("b", F, qemu=(6, 2, 0)), _rec("c", F), _rec("d", F)]
    assert [d["series"] for d in partition(hosts)] == [(7, 2), (6, 2)]
    hosts = [_rec("a", F), _rec("b", F), _rec("c", ppm_off(F, 200)), _rec("d", ppm_off(F, 200)),
             _rec("e", ppm_off(F, 100))]
    [d] = partition(hosts)
    assert d["tsc_khz"] == F  # every F holds all five; two hosts have F and two F+200: the lower wins


def test_every_member_scaling_makes_one_domain_whatever_the_frequencies():
    from kvmtune.fleet.domains import partition

    [d] = partition([_rec("a", F, True), _rec("b", ppm_off(F, 5000), True), _rec("c", None, True)])
    assert len(d["hosts"]) == 3


def test_a_fleet_of_one_host_has_no_domain_and_says_why(run_cli, real, tmp_path):
    code, result, _ = run(run_cli, write(tmp_path, [host(real["intel"], "hv01")]))
    assert code == 1 and result["domains"] == []
    assert result["excluded"] == [{"host": "hv01", "reasons": [
        "alone: no other host shares its CPU vendor, its TSC band (or TSC scaling) and its QEMU series"]}]


def test_an_older_cpu_lowers_the_domain_model_and_is_named_for_it(run_cli, real, tmp_path):
    results = [host(real["intel"], "hv01"), host(real["intel"], "hv02"), host(real["intel"], "hv12", drop_flag="avx512bw")]
    code, result, _ = run(run_cli, write(tmp_path, results))
    [domain] = result["domains"]
    assert code == 0 and domain["hosts"] == ["hv01", "hv02", "hv12"]  # the model does not split a domain
    assert domain["cpu_model"] != CASCADE and "avx512bw" not in domain["features"]
    [held] = [w for w in result["warnings"] if "back from" in w]
    assert held.startswith("domain 1: hv12 (lacks avx512bw) holds the domain back from ")


def test_a_newer_qemu_host_takes_guests_from_the_domain_but_never_gives_back(run_cli, real, tmp_path):
    results = [host(real["intel"], f"hv0{i}") for i in range(1, 4)] + [host(real["intel"], "new1", qemu="8.1.0")]
    vulns = next(c for c in results[0]["checks"] if c["id"] == "cpu.vulnerabilities")
    del vulns["data"]  # a result that does not say which mitigations are in force: no difference
    code, result, _ = run(run_cli, write(tmp_path, results))
    assert [d["hosts"] for d in result["domains"]] == [["hv01", "hv02", "hv03"]]
    why = "QEMU 8.1 is newer than 7.2 on 3 members: one-way only"
    assert result["excluded"] == [{"host": "new1", "reasons": [why]}]
    assert result["one_way"] == [{"from": "domain 1", "to": "new1", "reason": why}]
    assert result["warnings"] == []
