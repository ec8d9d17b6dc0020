"""bench figures that hold from run to run: intervals over the paired rounds, verdicts only where an
interval supports them, rounds that go on until the ratios converge or the budget ends, and a
host that says when it was disturbed. Without KVM: the rounds are fed by a stand-in guest."""

import json
import random
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "kvmtune" / "schema" / "bench.schema.json").read_text())
MiB = 1 << 20


# -- intervals and verdicts ----------------------------------------------------------------

def test_the_interval_holds_the_median_and_narrows_with_more_rounds():
    from kvmtune.bench.stats import bootstrap_ci

    rng = random.Random(5)
    few = [0.7 * rng.lognormvariate(0, 0.2) for _ in range(5)]
    many = few + [0.7 * rng.lognormvariate(0, 0.2) for _ in range(60)]
    for values in (few, many):
        low, high = bootstrap_ci(values)
        median = sorted(values)[len(values) // 2]
        assert low <= median <= high
    assert bootstrap_ci(many)[1] - bootstrap_ci(many)[0] < bootstrap_ci(few)[1] - bootstrap_ci(few)[0]
    assert bootstrap_ci([0.7]) is None  # one round says nothing about its noise
    assert bootstrap_ci(few, seed=3) == bootstrap_ci(few, seed=3)


def test_a_lopsided_sample_still_gets_an_interval_holding_its_median():
    from kvmtune.bench.stats import bootstrap_ci

    # four of five rounds tie, so most resampled medians are one value; the point must stay inside
    values = [1.0, 1.0, 1.0, 1.0, 0.2]
    low, high = bootstrap_ci(values)
    assert low <= 1.0 <= high


def test_five_rounds_on_one_side_are_no_verdict_and_more_rounds_widen_to_the_order_interval():
    from kvmtune.bench.stats import bootstrap_ci, order_rank, verdict

    # five rounds all below 1 happen by chance one time in sixteen when nothing changed
    five = [0.95, 0.97, 0.98, 0.99, 0.96]
    assert bootstrap_ci(five) == (0.95, 0.99)
    assert verdict(bootstrap_ci(five), len(five)) == "not-measurable"
    assert verdict(bootstrap_ci(five + [0.97]), 6) == "faster"
    # nine rounds: [x(2), x(8)] holds the median 96 % of the time whatever the noise
    assert order_rank(9) == 2 and order_rank(5) == 0
    nine = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 1.1, 1.2]
    low, high = bootstrap_ci(nine)
    assert low <= 0.9 and high >= 1.1


def test_the_budget_ends_the_rounds_before_the_least_but_not_before_three():
    result, rows = _walk(lambda kind, gp, n: 0.7, 0.0, rounds=10)
    assert result["rounds_run"] == 3
    assert rows["thp", "2M"]["verdict"] == "not-measurable"  # three rounds: no 95 % interval


@pytest.mark.parametrize("interval, said", [
    ((0.6, 0.9), "faster"), ((1.05, 1.2), "slower"), ((0.8, 1.1), "not-measurable"),
    ((0.9, 1.0), "not-measurable"), (None, "not-measurable"),
])
def test_a_verdict_only_where_the_interval_excludes_no_effect(interval, said):
    from kvmtune.bench.stats import verdict

    assert verdict(interval) == said


def test_converged_means_within_five_percent_of_the_ratio():
    from kvmtune.bench.stats import converged

    assert converged(0.7, (0.67, 0.73))
    assert not converged(0.7, (0.6, 0.73))
    assert not converged(0.7, None)


# -- the conclusion follows the intervals ------------------------------------------------------

def _result(ratio: float, interval, verdict: str, disturbed: bool = False) -> dict:
    def row(backing, ratio_, ci, said):
        ns = 300.0 * ratio_
        return {"backing": backing, "guest_page": "2M", "ns_per_access": {"median": ns, "min": ns, "max": ns},
                "cv": 0.01, "ratio_vs_4k": ratio_, "ratio_range": [ratio_, ratio_], "ratio_vs_4k_ci": ci,
                "verdict": said, "first_touch_ms": 10.0, "skipped": None}

    return {"schema_version": 1,
            "host": {"cpu_model": "x", "cpus": 2, "kernel": "6", "kvm_flavour": "pvm", "memory_kb": 1,
                     "available_kb": 1, "thp": {"enabled": "madvise", "defrag": "madvise"}, "pools": {},
                     "guest_pages": ["2M", "4K"], "largest_guest_page": "2M"},
            "settings": {"quick": True, "size": 64 * MiB, "rounds": 5, "accesses": 1000, "sections": ["memory"],
                         "grow_pools": False, "seed": 1, "backings": ["4k", "hugetlb-2M"], "budget_s": 10.0},
            "memory": [row("4k", 1.0, None, None), row("hugetlb-2M", ratio, interval, verdict)],
            "exits": None, "native": [], "ksm": None, "emulated": False, "warnings": [], "changes": [],
            "skipped": {}, "host_restored": True, "rounds_run": 9, "not_converged": [], "disturbed": disturbed,
            "steal_pct": 0.0,
            "interference": {"steal_pct": 0.0, "others_busy_pct": 60.0 if disturbed else 1.0, "load_1m": 1.0,
                             "disturbed": disturbed, "reasons": ["other tasks"] if disturbed else []}}


def test_a_wide_interval_states_no_conclusion_whatever_the_point_says():
    from kvmtune.bench.judge import conclusion

    # the point alone (0.80) reads as a 20 % gain; its interval reaches past 1
    result = _result(0.80, [0.62, 1.08], "not-measurable", disturbed=True)
    jsonschema.validate(result, SCHEMA)
    text = conclusion(result)
    assert text.startswith("no measurable difference at this noise level")
    assert "0.62-1.08" in text and "disturbed" in text
    assert "cut" not in text


def test_a_narrow_interval_states_the_gain_with_its_interval():
    from kvmtune.bench.judge import conclusion

    text = conclusion(_result(0.70, [0.66, 0.74], "faster"))
    assert "cut the time" in text and "by 30%" in text and "0.66-0.74" in text
    text = conclusion(_result(1.20, [1.1, 1.3], "slower"))
    assert "20% slower" in text


def test_text_and_prometheus_show_the_interval_the_verdict_and_the_disturbance():
    import io

    from kvmtune.render.bench_prometheus import render_bench_prometheus
    from kvmtune.render.bench_text import render_bench

    result = _result(0.70, [0.66, 0.74], "faster", disturbed=True)
    result["disturbed"], result["steal_pct"] = True, 7.5
    out = io.StringIO()
    render_bench(result, out)
    text = out.getvalue()
    line = next(l for l in text.splitlines() if l.startswith("hugetlb-2M"))
    assert "0.70 (0.66-0.74)" in line and "faster" in line
    assert "disturbed" in text and "9 rounds (at least 5, within 10 s)" in text
    metrics = render_bench_prometheus(result)
    assert 'kvmtune_bench_ratio_vs_4k_interval{backing="hugetlb-2M",guest_page="2M",bound="low"} 0.66' in metrics
    assert 'kvmtune_bench_verdict{backing="hugetlb-2M",guest_page="2M",verdict="faster"} 1' in metrics
    assert "kvmtune_bench_disturbed 1" in metrics and "kvmtune_bench_steal_ratio 0.075" in metrics


# -- adaptive rounds, fed by a stand-in guest --------------------------------------------------

class _Guest:
    """Answers the walk calls with times from ``ratio(kind, round)``; a 4K walk takes 1 s."""

    def __init__(self, ratio):
        self.ratio, self.calls = ratio, {}

    def base(self, kind, guest_page):
        return (kind, guest_page)

    def call(self, routine, count, base=0, start=0):
        if routine != "chase" or count < 10_000:
            return 0.001
        kind, guest_page = base
        n = self.calls[base] = self.calls.get(base, 0) + 1
        return 1.0 if kind == "4k" else self.ratio(kind, guest_page, n)

    def answers(self):
        return (0, 0)


def _walk(ratio, budget_s: float, rounds: int | None = None):
    from kvmtune.bench.hostmem import Mapping
    from kvmtune.bench.run import Settings
    from kvmtune.bench.walks import measure_walks

    settings = Settings(size=2 * MiB, rounds=rounds, sections=("memory",), backings=("4k", "thp"),
                        budget_s=budget_s)
    settings.accesses = 20_000
    settings.start_clock()
    mappings = [Mapping("4k", 2 * MiB), Mapping("thp", 2 * MiB)]
    result = {"memory": [], "native": [], "warnings": []}
    skips = {"4k": None, "thp": None, "hugetlb-2M": "not asked for", "hugetlb-1G": "not asked for"}
    try:
        measure_walks(settings, result, mappings, skips, _Guest(ratio), None, lambda *a: None)
    finally:
        for m in mappings:
            m.free()
    return result, {(r["backing"], r["guest_page"]): r for r in result["memory"]}


def test_steady_ratios_stop_at_the_least_rounds_with_a_verdict():
    result, rows = _walk(lambda kind, gp, n: 0.7 if gp == "2M" else 1.0 + (0.001 if n % 2 else -0.001), 30.0)
    assert result["rounds_run"] == 6
    assert result["not_converged"] == []
    assert rows["thp", "2M"]["verdict"] == "faster" and rows["thp", "2M"]["ratio_vs_4k_ci"] == [0.7, 0.7]
    assert rows["thp", "4K"]["verdict"] == "not-measurable"  # +-0.1 % around 1: no effect either way
    assert rows["4k", "2M"]["verdict"] is None and rows["4k", "2M"]["ratio_vs_4k_ci"] is None


def test_noisy_ratios_run_on_until_the_budget_and_say_which_did_not_converge():
    import time

    noise = random.Random(2)
    began = time.monotonic()
    result, rows = _walk(lambda kind, gp, n: 0.7 * noise.uniform(0.5, 1.6) if gp == "2M" else 1.0, 1.0)
    assert time.monotonic() - began < 5
    assert result["rounds_run"] > 6
    assert result["not_converged"] == ["thp/2M"]
    assert any("still wider than +-5%: thp/2M" in w for w in result["warnings"])
    row = rows["thp", "2M"]
    assert row["ratio_vs_4k_ci"][0] <= row["ratio_vs_4k"] <= row["ratio_vs_4k_ci"][1]


def test_noise_that_settles_converges_before_the_budget():
    # wild for the first rounds, then steady: more than the least rounds, fewer than the budget allows
    result, rows = _walk(lambda kind, gp, n: 0.7 * (1 + (0.5 if n % 2 else -0.3)) if n <= 6 and gp == "2M"
                         else 0.7 if gp == "2M" else 1.0, 30.0)
    assert 6 < result["rounds_run"] < 60
    assert result["not_converged"] == []


# -- interference ---------------------------------------------------------------------------

STAT = ("cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\n"
        "cpu0 1 0 1 1 0 0 0 0 0 0\nintr 5\n")


def _stat(user, system, idle, steal):
    from kvmtune.bench.interference import parse_cpu_line

    return parse_cpu_line(STAT.format(user=user, system=system, idle=idle, steal=steal))


def test_steal_and_other_tasks_are_told_apart_from_the_bench_itself():
    from kvmtune.bench.interference import judge

    before = _stat(1000, 100, 5000, 0)
    # 2 CPUs for 10 s = 2000 ticks: the bench used 1000 of them, others 100, idle 900
    quiet = judge(before, _stat(2050, 150, 5900, 0), own_ticks=1000, load=1.1, cpus=2)
    assert quiet["steal_pct"] == 0 and quiet["others_busy_pct"] == 10.0 and not quiet["disturbed"]
    # the other CPU kept busy by another task, and the hypervisor taking 10 %
    busy = judge(before, _stat(2600, 200, 5100, 200), own_ticks=1000, load=3.5, cpus=2)
    assert busy["steal_pct"] == 10.0 and busy["others_busy_pct"] == 87.5 and busy["disturbed"]
    assert len(busy["reasons"]) == 3
    assert judge(None, None, 0, None, 2)["steal_pct"] is None


def test_a_stat_file_without_the_cpu_line_is_not_read_as_quiet():
    from kvmtune.bench.interference import parse_cpu_line

    with pytest.raises(ValueError):
        parse_cpu_line("cpu0 1 2 3 4 5 6 7 8\n")


# -- TSC calibration ---------------------------------------------------------------------------

def test_the_tsc_rate_is_ticks_over_monotonic_nanoseconds_and_says_how():
    from kvmtune.bench.tsc import calibrate

    clock = calibrate((1_000_000_000, 5_000_000, 40), (3_000_000_000, 5_200_000_000 + 5_000_000, 60))
    assert clock["tsc_mhz"] == 2600.0
    assert "CLOCK_MONOTONIC over 2.00 s" in clock["tsc_calibration"]
    assert calibrate((10, 500, 1), (10, 900, 1)) is None  # no time passed
    assert calibrate((10, 500, 1), (20, 400, 1)) is None  # the TSC went back
