"""The kernel's osnoise tracer beside kvmtune's own detour loop, where the kernel has it.

The interface is the one Documentation/trace/osnoise-tracer.rst describes: write
``osnoise`` to ``current_tracer`` (tracefs, usually /sys/kernel/tracing), limit its
threads with ``osnoise/cpus``, and read ``trace``: one line per CPU per period with the
runtime, the noise (both µs), the CPU available (%), the longest single noise (µs) and the
interference counters HW, NMI, IRQ, SIRQ and THREAD. The tracer runs after kvmtune's own
window, not during it: each would count the other's busy thread as noise.

Only a tracefs nobody is using is touched (``current_tracer`` is ``nop`` and no event is
enabled), because switching tracers empties the ring buffer. Every file written is read
first, its text journaled before the write (``journal``: bench.undo, the journal's bench
section, so that rollback puts it back after a kill -9), and written back afterwards, newest
first, also on Ctrl-C, and read back; what does not read back as found is reported and
stays journaled. A tracefs that is not mounted is not mounted for the
run: the section says so.
"""

from __future__ import annotations

import re
import signal
import time

from kvmtune.errors import HostError
from kvmtune.host.cpulist import format_cpulist
from kvmtune.tune.journal_bench import TRACEFS as PLACES, put_back_tracer
# TASK-PID [CPU] flags TIMESTAMP: RUNTIME NOISE %AVAILABLE MAX-SINGLE HW NMI IRQ SIRQ THREAD
LINE = re.compile(r"\[(\d{1,5})\]\s+\S+\s+[0-9.]+:\s+(\d+)\s+(\d+)\s+([0-9.]+)\s+(\d+)"
                  r"\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
COUNTERS = ("hw", "nmi", "irq", "sirq", "thread")
SIGNALS = {signal.SIGINT, signal.SIGTERM}


def find_tracefs(host) -> tuple[str | None, str | None]:
    """(where tracefs is mounted, None) or (None, why osnoise cannot run here)."""
    try:
        mounts = host.read_optional("proc/mounts", limit=16 << 20) or ""
        points = {f.split()[1].lstrip("/") for f in mounts.split("\n") if f.split()[2:3] == ["tracefs"]}
        base = next((p for p in PLACES if p in points), None)
        if base is None:
            known = "tracefs" in (host.read_optional("proc/filesystems") or "")
            return None, ("tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing to let bench run "
                          "the osnoise tracer)" if known else "this kernel has no tracefs")
        tracers = (host.read_optional(f"{base}/available_tracers") or "").split()
    except HostError as exc:
        return None, f"tracefs cannot be read: {exc.reason}"
    if "osnoise" not in tracers:
        return None, (f"this kernel has no osnoise tracer (CONFIG_OSNOISE_TRACER; available: "
                      f"{' '.join(tracers) or 'none'})")
    return base, None


def parse_trace(text: str) -> dict[int, dict]:
    """CPU -> the osnoise figures summed over its periods (longest single noise: the max)."""
    out: dict[int, dict] = {}
    for line in text.split("\n"):
        if line.startswith("#"):
            continue
        m = LINE.search(line)
        if not m:
            continue
        cpu = int(m.group(1))
        runtime, noise, _, single = int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
        row = out.setdefault(cpu, {"periods": 0, "runtime_us": 0, "noise_us": 0, "max_single_us": 0,
                                   **{k: 0 for k in COUNTERS}})
        row["periods"] += 1
        row["runtime_us"] += runtime
        row["noise_us"] += noise
        row["max_single_us"] = max(row["max_single_us"], single)
        for key, value in zip(COUNTERS, m.groups()[5:]):
            row[key] += int(value)
    for row in out.values():
        row["available_pct"] = round(100 * (1 - row["noise_us"] / row["runtime_us"]), 4) if row["runtime_us"] else None
    return out


def measure_osnoise(host, base: str, cpus: list[int], seconds: float, sleep=time.sleep,
                    journal=None) -> tuple[dict | None, str | None, list[str]]:
    """Run the tracer on ``cpus`` for ``seconds``: (figures, None, problems) or (None, why not,
    problems). problems: what did not read back as found afterwards. ``journal(saved)`` keeps
    the files written so far and their texts before on disk (an empty list: all are back)."""
    journal = journal or (lambda saved: None)
    try:
        tracer = host.read(f"{base}/current_tracer").strip()
        events = (host.read_optional(f"{base}/set_event") or "").strip()
    except HostError as exc:
        return None, f"tracefs cannot be read: {exc.reason}", []
    if tracer != "nop" or events:
        busy = f"current_tracer is {tracer}" if tracer != "nop" else "events are enabled (set_event)"
        return None, f"tracefs is in use ({busy}): osnoise left alone, since switching tracers empties the buffer", []
    saved: list[tuple[str, str]] = []  # (file, its text before), in the order written
    failure, text = None, ""
    try:
        _set(host, saved, f"{base}/osnoise/cpus", format_cpulist(cpus), journal)
        _set(host, saved, f"{base}/tracing_on", "1", journal)
        _set(host, saved, f"{base}/current_tracer", "osnoise", journal)
        sleep(seconds)
        text = host.read(f"{base}/trace", limit=64 << 20)
    except HostError as exc:
        failure = f"the osnoise tracer could not run: {exc.reason}"
    finally:
        written = bool(saved)
        problems = restore(host, saved)
        if written and not problems:  # all back as found: nothing left to remember
            journal([])
    if failure:
        return None, failure, problems
    rows = parse_trace(text)
    figures = {"tracefs": "/" + base, "seconds": seconds,
               "cpus": {str(cpu): row for cpu, row in sorted(rows.items()) if cpu in cpus}}
    return figures, None, problems


def _set(host, saved: list, rel: str, value: str, journal) -> None:
    before = host.read(rel)
    if before.strip() == value:
        return
    saved.append((rel, before))
    journal(saved)  # the text before is on disk before the write
    host.write(rel, value)


def restore(host, saved: list) -> list[str]:
    """Write back what ``saved`` holds (tune.journal_bench.put_back_tracer), with Ctrl-C held
    off until done. Empties ``saved``; problems as sentences."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        return put_back_tracer(host, saved)[1]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
