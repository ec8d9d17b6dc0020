"""bench --only noise: counters parsed from captured files, the detour loop's figures, findings that
name the cause, the osnoise tracer run and put back on a tree built from the kernel's documented
interface, and, live, a busy thread of another process named on its CPU and not on the other."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.support.treestate import tree_state

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
NOISE = FIXTURES / "noise"
SCHEMA = json.loads((REPO / "kvmtune" / "schema" / "bench.schema.json").read_text())


# -- counters from captured files ------------------------------------------------------------

def test_interrupts_of_this_machine_parse_by_source_and_cpu():
    from kvmtune.bench.noise_counters import parse_interrupts

    irqs = parse_interrupts((NOISE / "interrupts-pvm-2cpu.txt").read_text())
    assert irqs["LOC"] == {0: 2907097, 1: 3114271}
    assert irqs["RES"] == {0: 1270117, 1: 194180}
    assert irqs["TLB"] == {0: 100282, 1: 95201}
    assert irqs["36 virtio1-req.0"] == {0: 0, 1: 15813108}
    assert irqs["24 ACPI:Ged"] == {0: 1, 1: 0}
    assert "ERR" not in irqs and "MIS" not in irqs  # one count, not one per CPU


def test_interrupts_map_columns_to_the_cpus_the_header_names():
    """CPU3 and CPU4 are offline: the fourth column is CPU5; handler names keep their spaces."""
    from kvmtune.bench.noise_counters import parse_interrupts

    irqs = parse_interrupts((NOISE / "interrupts-synthetic-offline.txt").read_text())
    assert irqs["45 eth0-TxRx-3"] == {0: 0, 1: 0, 2: 0, 5: 2000000}
    assert irqs["16 i801_smbus, ehci_hcd:usb1"][2] == 50
    assert irqs["29 ahci[0000:00:17.0]"][0] == 1200
    assert "46" in irqs  # no handler: the number alone
    assert irqs["LOC"][5] == 1000000


def test_softirqs_parse_by_kind_and_cpu():
    from kvmtune.bench.noise_counters import parse_softirqs

    soft = parse_softirqs((NOISE / "softirqs-pvm-2cpu.txt").read_text())
    assert soft["BLOCK"] == {0: 0, 1: 15809909}
    assert soft["RCU"] == {0: 3685858, 1: 6248633}
    assert len(soft) == 10


def test_a_thread_stat_with_parentheses_in_its_name_and_its_schedstat():
    from kvmtune.bench.noise_counters import parse_task

    fields = ["S"] + ["0"] * 35 + ["5"] + ["0"] * 10  # field 39 (the 37th after comm) = 5
    stat = "4242 (a) (b c) " + " ".join(fields)
    assert parse_task(stat, "123456 789 40\n") == ("a) (b c", 5, 40, 123456)
    fields[11], fields[12] = "7", "3"  # utime, stime: the count without schedstat
    assert parse_task("4242 (x) " + " ".join(fields), None) == ("x", 5, 10, 0)
    assert parse_task("garbage", None) is None


def test_rates_count_per_second_on_the_cpu_and_survive_a_reused_counter():
    from kvmtune.bench.noise_counters import rates

    before = {"LOC": {0: 100, 1: 100}, "45 eth0": {0: 0, 1: 500}}
    after = {"LOC": {0: 2100, 1: 110}, "45 eth0": {0: 0, 1: 20}, "46 new": {1: 40}}
    assert rates(before, after, 0, 2.0) == {"LOC": 1000.0}
    # 45 went back (freed, reused): counted from zero; 46 is new
    assert rates(before, after, 1, 2.0) == {"46 new": 20.0, "45 eth0": 10.0, "LOC": 5.0}


def test_intruders_are_other_processes_threads_that_ran_on_the_cpu_they_ended_on():
    from kvmtune.bench.noise_counters import intruders

    before = {(10, 10): ("kworker/5:1", 5, 100, 0), (20, 21): ("busy", 5, 7, 0), (99, 99): ("me", 5, 1, 0),
              (30, 30): ("idle-ish", 5, 50, 0)}
    after = {(10, 10): ("kworker/5:1-events", 5, 140, 2_000_000), (20, 21): ("busy", 4, 90, 0),
             (99, 99): ("me", 5, 500, 0), (30, 30): ("idle-ish", 5, 50, 0), (40, 40): ("born", 5, 3, 0),
             (50, 50): ("hog", 5, 2, 900_000_000)}
    seen = intruders(before, after, 5, own_pid=99)
    # most CPU time first: two long turns outweigh forty short ones
    assert [(t["comm"], t["runs"]) for t in seen] == [("hog", 2), ("kworker/5:1-events", 40), ("born", 3)]
    assert seen[1]["cpu_ms"] == 2.0
    assert [t["comm"] for t in intruders(before, after, 4, own_pid=99)] == ["busy"]


def test_per_cpu_stat_gives_the_hypervisors_and_the_other_tasks_share():
    from kvmtune.bench.noise_counters import parse_cpu_stat, shares

    before = parse_cpu_stat("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 100 0 100 800 0 0 0 0 0 0\n"
                            "cpu1 100 0 100 800 0 0 0 0 50 0\nintr 1 2 3\n")
    after = parse_cpu_stat("cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 350 0 130 820 0 0 0 0 0 0\n"
                           "cpu1 150 0 100 800 0 0 0 250 50 0\n")
    assert after == {0: (480, 0, 1300), 1: (500, 250, 1300)}
    # CPU 0: 300 ticks, of which the loop ran 1 s (100 ticks): others had 180 of them
    assert shares(before, after, 0, 1.0, 100) == {"steal_pct": 0.0, "others_pct": 60.0}
    # CPU 1: 300 ticks, 250 stolen by the hypervisor, the loop ran the other 50
    assert shares(before, after, 1, 0.5, 100) == {"steal_pct": 83.3, "others_pct": 0.0}
    assert shares(before, after, 7, 1.0, 100) == {"steal_pct": None, "others_pct": None}


# -- the detour loop's figures -----------------------------------------------------------------

class FakeRun:
    def __init__(self, gaps, cpu=3, mhz=1000.0, span_us=1_000_000, longest=None):
        self.cpu, self.error = cpu, None
        self.buffer = [int(g * mhz) for g in gaps]
        self.recorded = len(gaps)
        lost = sum(self.buffer)
        self.out = [0, int(span_us * mhz), lost, len(gaps), int((longest or max(gaps, default=0.5)) * mhz)]


def test_detour_summary_has_percentiles_histogram_and_the_share_lost():
    from kvmtune.bench.detour import summarise

    gaps = [1.5] * 9990 + [30.0] * 9 + [2500.0]
    row = summarise(FakeRun(gaps), 1000.0, 1.0)
    assert row["detours_us"] == {"max": 2500.0, "p999": 30.0, "p9999": 2500.0}
    assert row["histogram_us"]["1"] == 9990 and row["histogram_us"]["20"] == 9 and row["histogram_us"]["1000"] == 1
    assert row["lost_ppm"] == pytest.approx((9990 * 1.5 + 270 + 2500), rel=1e-3)
    assert row["detours"] == 10000
    quiet = summarise(FakeRun([], longest=0.4), 1000.0, 1.0)
    assert quiet["detours_us"] == {"max": 0.4, "p999": 0.0, "p9999": 0.0} and quiet["lost_ppm"] == 0


def test_the_loop_runs_pinned_and_sees_its_own_sleep_as_no_detour():
    """Machine code: a window of 0.2 s on CPU 0 ends by itself at the TSC deadline."""
    from kvmtune.bench.detour import run_loops, summarise
    from kvmtune.bench.tsc import Tsc, calibrate

    tsc = Tsc()
    try:
        a = tsc.reading()
        time.sleep(0.02)
        mhz = calibrate(a, tsc.reading())["tsc_mhz"]
        began = time.monotonic()
        (run,) = run_loops([0], int(mhz), int(0.2e6 * mhz), lambda: tsc.reading()[1])
        wall = time.monotonic() - began
    finally:
        tsc.close()
    row = summarise(run, mhz, 1.0)
    # it may start late (its thread waits for a turn on a loaded CPU), and end late only by a detour
    assert 0.15 <= row["window_s"] <= 0.2 + row["detours_us"]["max"] / 1e6 + 0.002, row
    assert wall < 2.0
    assert 0 <= row["lost_ppm"] < 1e6 and row["detours"] == row["recorded"] == sum(row["histogram_us"].values())
    assert row["detours_us"]["max"] >= row["detours_us"]["p9999"] >= row["detours_us"]["p999"]


def test_an_interrupted_window_ends_every_loop_at_once_and_frees_the_code_after_them(monkeypatch):
    """Ctrl-C in a 30 s window: the loops read the deadline, now 0, and end; the code page is freed
    only after each loop's own event says it has left it."""
    import threading

    from kvmtune.bench import detour
    from kvmtune.bench.tsc import Tsc

    freed, created = [], []
    real_free = detour.Executable.free
    monkeypatch.setattr(detour.Executable, "free", lambda self: (
        freed.append([r.done.is_set() for r in created]) if self.length and created and not freed else None,
        real_free(self)))
    real_wait = threading.Event.wait
    calls = []

    def wait(self, timeout=None):  # the main thread's wait for the first loop to end is interrupted
        if threading.current_thread() is threading.main_thread() and self is not None and not calls \
                and getattr(self, "_noise_done", False):
            calls.append(1)
            time.sleep(0.2)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    real_init = detour.Run.__init__

    def init(self, code, cpu):
        real_init(self, code, cpu)
        self.done._noise_done = True
        created.append(self)

    monkeypatch.setattr(detour.Run, "__init__", init)
    monkeypatch.setattr(threading.Event, "wait", wait)
    tsc = Tsc()
    began = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            detour.run_loops([0, 1] if len(os.sched_getaffinity(0)) > 1 else [0], 2600, 30 * 2_600_000_000,
                             lambda: tsc.reading()[1])
    finally:
        tsc.close()
    assert time.monotonic() - began < 5  # not the 30 s window
    assert freed == [[True] * len(created)]  # the loops' code freed once every loop had left it


# -- findings and the conclusion ---------------------------------------------------------------

def _row(irqs=None, soft=None, intruders=(), max_us=5.0, ppm=10.0):
    return {"irqs_per_s": irqs or {}, "softirqs_per_s": soft or {}, "intruders": list(intruders),
            "detours_us": {"max": max_us, "p999": max_us, "p9999": max_us}, "lost_ppm": ppm, "detours": 1,
            "recorded": 1, "histogram_us": {"1": 1}, "window_s": 10.0, "threshold_us": 1.0}


def test_findings_name_the_cause():
    from kvmtune.bench.noise_judge import findings

    kworker = {"comm": "kworker/5:1", "pid": 77, "tid": 77, "runs": 40, "cpu_ms": 0.5}
    noise = {"cpus": {"3": _row({"LOC": 1000.0}), "5": _row({"45 eth0-TxRx-3": 2000.0}, intruders=[kworker])}}
    facts = {"isolated": [3, 5], "nohz_full": [], "nohz_full_arg": None, "kernel_nohz_full": True}
    said = findings(noise, facts)
    assert ("CPU 3: 1000 local timer interrupts/s: the tick is running (nohz_full not in effect: not on the "
            "command line)") in said
    assert "IRQ 45 (eth0-TxRx-3) fires 2000/s on isolated CPU 5" in said
    assert "CPU 5: kworker/5:1 (pid 77) ran 40 times (0.5 ms)" in said
    busy = dict(facts, nohz_full=[3], nohz_full_arg="3,5")
    noise["cpus"]["3"]["intruders"] = [dict(kworker, comm="stress")]
    assert any("more than one task runnable (stress ran here)" in f for f in findings(noise, busy))
    assert any("no nohz_full: CONFIG_NO_HZ_FULL" in f for f in findings(noise, dict(facts, kernel_nohz_full=False)))


def test_the_conclusion_names_the_noisiest_cpu_and_its_cause_or_says_quiet():
    from kvmtune.bench.noise_judge import conclusion

    busy = {"comm": "stress", "pid": 9, "tid": 9, "runs": 300, "cpu_ms": 4000.0}
    noise = {"cpus": {"2": _row(), "3": _row({"LOC": 250.0}, intruders=[busy], max_us=4000.0, ppm=400000.0)}}
    text = conclusion(noise)
    assert text.startswith("CPU 3 is the noisiest of 2-3: detours up to 4000 us, 40 % of its time lost")
    assert "stress (pid 9) ran 300 times" in text
    assert conclusion({"cpus": {"2": _row(), "4": _row()}}).startswith("CPU 2,4 quiet: no detour above 5.0 us")
    noise["cpus"]["3"].update(steal_pct=35.0, others_pct=5.0)
    assert conclusion(noise).endswith("the hypervisor took 35 % of the CPU (steal), other tasks 5 %")
    noise["cpus"]["3"].update(steal_pct=0.0, others_pct=40.0)
    assert conclusion(noise).endswith("other tasks had 40 % of the CPU, most stress (pid 9, 4000 ms); the "
                                      "hypervisor 0 % (steal)")


# -- osnoise on a tree built from Documentation/trace/osnoise-tracer.rst ----------------------

@pytest.fixture
def tracefs(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "osnoise-tracefs", root)
    return root


def test_osnoise_runs_on_the_chosen_cpus_and_every_file_is_put_back(tracefs):
    from kvmtune.bench.osnoise import find_tracefs, measure_osnoise
    from kvmtune.host.writable import WritableHost

    host = WritableHost(str(tracefs), live=False)
    before = tree_state(str(tracefs))
    base, why = find_tracefs(host)
    assert base == "sys/kernel/tracing" and why is None
    during = {}

    def sleep(seconds):  # the kernel's tracer would run now: what does tracefs say?
        during.update({name: host.read(f"{base}/{name}") for name in ("current_tracer", "osnoise/cpus", "tracing_on")})

    figures, why, problems = measure_osnoise(host, base, [1, 3], 3.0, sleep)
    assert during == {"current_tracer": "osnoise\n", "osnoise/cpus": "1,3\n", "tracing_on": "1\n"}
    assert why is None and problems == []
    assert tree_state(str(tracefs)) == before  # fails when restore() is left out
    assert set(figures["cpus"]) == {"1", "3"}
    one = figures["cpus"]["1"]
    assert (one["periods"], one["runtime_us"], one["noise_us"], one["max_single_us"]) == (2, 2000000, 4100, 420)
    assert (one["hw"], one["nmi"], one["irq"], one["sirq"], one["thread"]) == (10, 0, 2491, 60, 16)
    assert one["available_pct"] == pytest.approx(99.795)


def test_osnoise_is_put_back_when_the_run_is_interrupted(tracefs):
    from kvmtune.bench.osnoise import measure_osnoise
    from kvmtune.host.writable import WritableHost

    host = WritableHost(str(tracefs), live=False)
    before = tree_state(str(tracefs))

    def interrupted(seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        measure_osnoise(host, "sys/kernel/tracing", [0], 1.0, interrupted)
    assert tree_state(str(tracefs)) == before


def test_a_tracefs_in_use_is_left_alone_and_an_absent_tracer_is_said(tracefs):
    from kvmtune.bench.osnoise import find_tracefs, measure_osnoise
    from kvmtune.host.writable import WritableHost

    tracing = tracefs / "sys/kernel/tracing"
    (tracing / "current_tracer").write_text("function\n")
    before = tree_state(str(tracefs))
    host = WritableHost(str(tracefs), live=False)
    figures, why, problems = measure_osnoise(host, "sys/kernel/tracing", [0], 1.0, lambda s: None)
    assert figures is None and "in use (current_tracer is function)" in why
    assert tree_state(str(tracefs)) == before
    (tracing / "available_tracers").write_text("function nop\n")
    assert "no osnoise tracer" in find_tracefs(host)[1]
    (tracefs / "proc/mounts").write_text("proc /proc proc rw 0 0\n")
    assert "tracefs is not mounted" in find_tracefs(WritableHost(str(tracefs), live=False))[1]


def test_a_file_that_does_not_read_back_is_reported():
    from kvmtune.bench.osnoise import restore

    class Stuck:  # a kernel that ignores the write
        def write(self, rel, value):
            pass

        def read(self, rel):
            return "osnoise\n"

    problems = restore(Stuck(), [("sys/kernel/tracing/current_tracer", "nop\n")])
    assert problems == ["/sys/kernel/tracing/current_tracer was 'nop' before the run and is 'osnoise' now"]


# -- outputs -------------------------------------------------------------------------------------

def _result(noise):
    return {"schema_version": 1,
            "host": {"cpu_model": "x", "cpus": 2, "kernel": "6", "kvm_flavour": "pvm", "memory_kb": 1,
                     "available_kb": 1, "thp": {"enabled": "madvise", "defrag": "madvise"}, "pools": {},
                     "guest_pages": ["2M", "4K"], "largest_guest_page": "2M"},
            "settings": {"quick": True, "size": 1 << 26, "rounds": 6, "accesses": 1, "sections": ["noise"],
                         "grow_pools": False, "seed": 1, "backings": ["4k"], "budget_s": 10.0, "duration_s": 3.0},
            "memory": [], "exits": None, "native": [], "ksm": None, "emulated": None, "warnings": [], "changes": [],
            "skipped": {}, "host_restored": True, "rounds_run": 0, "not_converged": [], "disturbed": False,
            "steal_pct": None, "interference": None, "noise": noise}


def _noise(osnoise=None):
    from kvmtune.bench.noise_judge import conclusion, findings

    busy = {"comm": "stress", "pid": 9, "tid": 9, "runs": 300, "cpu_ms": 1500.0}
    noise = {"cpus": {"0": _row({"LOC": 250.0, "36 virtio1-req.0": 120.0}),
                      "1": _row({"LOC": 250.0}, intruders=[busy], max_us=4000.0, ppm=500000.0)},
             "osnoise": osnoise, "osnoise_skipped": None if osnoise else "this kernel has no osnoise tracer",
             "chosen": "every online CPU: none is isolated", "duration_s": 3.0, "threshold_us": 1.0,
             "tsc_mhz": 2596.1, "tsc_calibration": "rdtsc against CLOCK_MONOTONIC over 3.00 s, +-1 ppm",
             "problems": []}
    noise["findings"] = findings(noise, {"isolated": [], "nohz_full": [], "kernel_nohz_full": False})
    noise["conclusion"] = conclusion(noise)
    return noise


def test_text_draws_a_bar_per_cpu_and_ends_with_the_conclusion():
    import io

    from kvmtune.render.bench_text import render_bench

    stream = io.StringIO()
    result = _result(_noise())
    jsonschema.validate(result, SCHEMA)
    render_bench(result, stream)
    lines = stream.getvalue().rstrip("\n").split("\n")
    bars = [l for l in lines if l.split()[:1] in (["0"], ["1"]) and "#" in l]
    assert len(bars) == 2
    assert len(bars[1].split()[1]) > len(bars[0].split()[1])  # 4 ms is a longer bar than 5 us
    assert lines[-1] == result["noise"]["conclusion"] and lines[-1].startswith("CPU 1 is the noisiest")
    assert "osnoise: not run: this kernel has no osnoise tracer" in lines


def test_prometheus_has_the_noise_families():
    from kvmtune.render.bench_prometheus import render_bench_prometheus

    osnoise = {"tracefs": "/sys/kernel/tracing", "seconds": 3.0,
               "cpus": {"1": {"periods": 3, "runtime_us": 3000000, "noise_us": 300, "max_single_us": 40, "hw": 1,
                              "nmi": 0, "irq": 3000, "sirq": 20, "thread": 2, "available_pct": 99.99}}}
    result = _result(_noise(osnoise))
    jsonschema.validate(result, SCHEMA)
    text = render_bench_prometheus(result)
    assert 'kvmtune_bench_noise_detour_seconds{cpu="1",stat="max"} 0.004' in text
    assert 'kvmtune_bench_noise_lost_ratio{cpu="1"} 0.5' in text
    assert 'kvmtune_bench_noise_interrupts_per_second{cpu="0",source="36 virtio1-req.0"} 120' in text
    assert 'kvmtune_bench_noise_other_task_runs{cpu="1",comm="stress"} 300' in text
    assert 'kvmtune_bench_osnoise_interferences{cpu="1",kind="irq"} 3000' in text


def test_compare_shows_device_irqs_going_to_zero(run_cli, tmp_path):
    before, after = _result(_noise()), _result(_noise())
    after["noise"]["cpus"]["0"]["irqs_per_s"] = {"LOC": 250.0}
    (tmp_path / "a.json").write_text(json.dumps(before))
    (tmp_path / "b.json").write_text(json.dumps(after))
    code, out, err = run_cli("bench", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    assert code == 0, err
    figures = {f["figure"]: f for f in json.loads(out)["figures"]}
    assert figures["noise cpu 0 device irqs /s"] == {"figure": "noise cpu 0 device irqs /s", "before": 120.0,
                                                      "after": 0, "change": -1.0}
    broken = dict(before, noise={"cpus": {"0": {"detours_us": "x"}}})
    (tmp_path / "c.json").write_text(json.dumps(broken))
    code, _, err = run_cli("bench", "--compare", str(tmp_path / "c.json"), str(tmp_path / "b.json"))
    assert code == 2 and "noise.cpus[0]" in err


@pytest.mark.parametrize("argv, words", [
    (["--cpus", "x-y"], "--cpus: expected a CPU list"),
    (["--cpus", "4095"], "is not online"),
    (["--duration", "0"], "--duration: expected seconds"),
    (["--duration", "ten"], "--duration: expected seconds"),
])
def test_bad_noise_options_exit_2_naming_the_option(run_cli, argv, words):
    code, out, err = run_cli("bench", "--only", "noise", *argv)
    assert code == 2, err
    assert words in err and out == ""


# -- live ----------------------------------------------------------------------------------------

BUSY = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nprint('ready', flush=True)\nwhile True: pass\n"


def _firing_irqs(cpus: list[int]) -> list[str]:
    """The device IRQs that fire on any of ``cpus`` over a second, most first."""
    from kvmtune.bench.noise_counters import parse_interrupts, rates
    from kvmtune.bench.noise_judge import is_device

    first = parse_interrupts(Path("/proc/interrupts").read_text())
    time.sleep(1.0)
    then = parse_interrupts(Path("/proc/interrupts").read_text())
    total: dict[str, float] = {}
    for cpu in cpus:
        for source, rate in rates(first, then, cpu, 1.0).items():
            if is_device(source):
                total[source] = total.get(source, 0) + rate
    return sorted(total, key=lambda s: -total[s])


def _move_irq(sources: list[str], cpu: int, saved: dict) -> str | None:
    """Point the first IRQ that can move at ``cpu`` (keeping what was there in ``saved``)."""
    for source in sources:
        knob = Path(f"/proc/irq/{source.split()[0]}/smp_affinity_list")
        try:
            saved[knob] = knob.read_text()
            knob.write_text(str(cpu))
        except OSError:  # EPERM: a managed IRQ or a chip that cannot move it (IRQ 36 here)
            saved.pop(knob, None)
            continue
        time.sleep(0.1)  # the next interrupt lands on the new CPU
        return source
    return None


@pytest.mark.live
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_a_busy_thread_of_another_process_is_named_on_its_cpu_and_not_the_other():
    from kvmtune.bench.noise import measure_noise
    from kvmtune.host.writable import WritableHost

    cpus = sorted(os.sched_getaffinity(0))[:2]
    busy_cpu, other = cpus[1], cpus[0]
    saved: dict = {}
    proc = subprocess.Popen([sys.executable, "-c", BUSY, str(busy_cpu)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        irq = _move_irq(_firing_irqs(cpus), busy_cpu, saved)
        noise, problems = measure_noise(WritableHost("/"), cpus, 2.0, "as given")
    finally:
        proc.kill()
        proc.wait()
        for knob, value in saved.items():
            knob.write_text(value)
    assert all(knob.read_text() == value for knob, value in saved.items())  # every affinity as found
    assert problems == []
    if irq is not None and irq in noise["cpus"][str(busy_cpu)]["irqs_per_s"]:
        # it fired in the window: on the CPU it was moved to, never on the one it left
        assert irq not in noise["cpus"][str(other)]["irqs_per_s"], noise["cpus"][str(other)]["irqs_per_s"]
        irq_no, _, name = irq.partition(" ")
        assert any(f.startswith(f"IRQ {irq_no} ({name}) fires") and f.endswith(f"on CPU {busy_cpu}")
                   for f in noise["findings"]) or noise["cpus"][str(busy_cpu)]["irqs_per_s"][irq] < 1, noise["findings"]
    named = {c: [t for t in noise["cpus"][str(c)]["intruders"] if t["pid"] == proc.pid] for c in cpus}
    assert named[busy_cpu] and named[busy_cpu][0]["cpu_ms"] > 100, noise["cpus"][str(busy_cpu)]["intruders"]
    assert not named[other], named
    # sharing the CPU with it, the loop lost a large share of its time there
    assert noise["cpus"][str(busy_cpu)]["lost_ppm"] > 200000
    assert any(f.startswith(f"CPU {busy_cpu}: python") and f"(pid {proc.pid})" in f for f in noise["findings"])
    assert not any(f"(pid {proc.pid})" in f and f.startswith(f"CPU {other}:") for f in noise["findings"])
    assert noise["cpus"][str(busy_cpu)]["irqs_per_s"].get("LOC", 0) > 0


@pytest.mark.live
def test_a_quick_noise_run_takes_at_most_5_s_and_validates():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kvmtune", "bench", "--only", "noise", "--quick", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    wall = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert wall <= 5.0, wall
    result = json.loads(proc.stdout)
    jsonschema.validate(result, SCHEMA)
    assert result["host_restored"] and result["noise"]["duration_s"] == 3.0
    assert set(result["noise"]["cpus"]) == {str(c) for c in sorted(os.sched_getaffinity(0))} or result["noise"]["chosen"]
    assert result["conclusion"] == result["noise"]["conclusion"]
