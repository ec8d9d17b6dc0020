"""bench's noise section: how quiet the measured CPUs are, and what disturbs them.

Counters (bench.noise_counters) are read at the start and the end of one window in
which a detour loop (bench.detour) runs on every measured CPU; then, where the kernel
has it, the osnoise tracer runs for as long (bench.osnoise). The TSC is calibrated
against CLOCK_MONOTONIC over the window itself (bench.tsc: rdtsc and the clock read
together before and after, the tightest pairing of seven tries), and once more over
20 ms before it only to set the threshold in ticks. Nothing on the host is changed but
the osnoise tracer's three files, which are put back.
"""

from __future__ import annotations

import os
import time

from kvmtune.bench import noise_counters as counters
from kvmtune.errors import HostError, Refused, UsageError

THRESHOLD_US = 1.0  # a gap above this is a detour (oslat's first bucket)
PRE_CALIBRATION_S = 0.02
CPU_DIR = "sys/devices/system/cpu"


def choose_cpus(host, given: list[int] | None) -> tuple[list[int], str]:
    """The CPUs to measure and why those: as given, else the isolated ones, else every online one."""
    from kvmtune.host.cpulist import cpulist, format_cpulist

    try:
        online = cpulist((host.read_optional(f"{CPU_DIR}/online") or "").strip()) or list(range(os.cpu_count() or 1))
    except (HostError, ValueError):
        online = list(range(os.cpu_count() or 1))
    if given:
        missing = [c for c in given if c not in online]
        if missing:
            raise UsageError(f"--cpus: CPU {format_cpulist(missing)} is not online (online: {format_cpulist(online)})")
        return sorted(set(given)), "as given with --cpus"
    isolated = [c for c in context(host)["isolated"] if c in online]
    if isolated:
        return isolated, "the isolated CPUs"
    return online, "every online CPU: none is isolated"


def context(host) -> dict:
    """What the findings need to name a cause: isolated and nohz_full CPUs, as the kernel has them."""
    from kvmtune.probe.isolation import read_isolation
    from kvmtune.probe.system import read_cmdline

    try:
        cmdline = read_cmdline(host)
        facts = read_isolation(host, cmdline)
        has_file = host.exists(f"{CPU_DIR}/nohz_full")
    except (HostError, ValueError):
        return {"isolated": [], "nohz_full": [], "nohz_full_arg": None, "kernel_nohz_full": None}
    return {"isolated": list(facts.all_isolated), "nohz_full": list(facts.nohz_full),
            "nohz_full_arg": facts.args.get("nohz_full"), "kernel_nohz_full": has_file}


def measure_noise(host, cpus: list[int], seconds: float, how: str, progress=None, sleep=time.sleep,
                  journal=None) -> tuple[dict, list[str]]:
    """The noise section's JSON, and what did not read back as found afterwards. ``journal``: where
    the osnoise tracer's files are journaled before they are written (bench.undo.Undo.tracer)."""
    from kvmtune.bench.detour import run_loops, summarise
    from kvmtune.bench.noise_judge import conclusion, findings
    from kvmtune.bench.tsc import Tsc, calibrate

    progress = progress or (lambda text, done=None, total=None: None)
    tsc = Tsc()
    try:
        first = tsc.reading()
        time.sleep(PRE_CALIBRATION_S)
        rough = calibrate(first, tsc.reading())
        if rough is None:
            raise Refused("the TSC did not advance: the noise section cannot time detours")
        progress(f"noise: {seconds:g} s on CPU {', '.join(map(str, cpus))}")
        before = counters.Counters(host)
        start = tsc.reading()
        runs = run_loops(cpus, int(THRESHOLD_US * rough["tsc_mhz"]), int(seconds * 1e6 * rough["tsc_mhz"]),
                         lambda: tsc.reading()[1])
        end = tsc.reading()
        after = counters.Counters(host)
    finally:
        tsc.close()
    clock = calibrate(start, end) or rough
    span = max(after.at - before.at, 1e-3)
    own = os.getpid()
    rows = {}
    for run in runs:
        cpu = run.cpu
        row = {"irqs_per_s": counters.rates(before.irqs, after.irqs, cpu, span),
               "softirqs_per_s": counters.rates(before.softirqs, after.softirqs, cpu, span),
               "intruders": counters.intruders(before.tasks, after.tasks, cpu, own)}
        row.update(summarise(run, clock["tsc_mhz"], THRESHOLD_US))
        if "error" not in row:  # the loop's own time: its window less its detours
            row.update(counters.shares(before.stat, after.stat, cpu,
                                       row["window_s"] * (1 - row["lost_ppm"] / 1e6), os.sysconf("SC_CLK_TCK")))
        rows[str(cpu)] = row
    noise = {"cpus": rows, "osnoise": None, "osnoise_skipped": None, "chosen": how, "duration_s": seconds,
             "threshold_us": THRESHOLD_US, "tsc_mhz": clock["tsc_mhz"], "tsc_calibration": clock["tsc_calibration"],
             "problems": before.problems + [p for p in after.problems if p not in before.problems]}
    problems = _osnoise(host, cpus, seconds, noise, progress, sleep, journal)
    facts = context(host)
    noise["findings"] = findings(noise, facts)
    noise["conclusion"] = conclusion(noise)
    return noise, problems


def _osnoise(host, cpus, seconds, noise: dict, progress, sleep, journal) -> list[str]:
    from kvmtune.bench.osnoise import find_tracefs, measure_osnoise

    base, why = find_tracefs(host)
    if base is None:
        noise["osnoise_skipped"] = why
        return []
    if not hasattr(host, "write"):
        noise["osnoise_skipped"] = "a read-only host: the tracer cannot be switched on"
        return []
    progress(f"noise: the kernel's osnoise tracer, {seconds:g} s")
    figures, why, problems = measure_osnoise(host, base, cpus, seconds, sleep, journal)
    noise["osnoise"], noise["osnoise_skipped"] = figures, why
    return problems
