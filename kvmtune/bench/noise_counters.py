"""The noise section's counters: interrupts, softirqs and the threads that ran, per CPU.

Read at the start and the end of the window, through the Host; the parsers take text so
they are tested on captured files. ``/proc/interrupts`` has one column per online CPU (its
header names them: an offline CPU has none), then for a device IRQ the chip, the hardware
IRQ and trigger, and the handlers' names; x86's own vectors (LOC, RES, CAL, TLB...) end with
a description instead. ``/proc/softirqs`` has the same header and a row per kind. Who ran
where comes from every thread's ``stat`` (its name and the CPU it ran on last, field 39) and
``schedstat`` (the times it was given a CPU, the third field; Documentation/scheduler/
sched-stats.rst), since stat has no count of context switches.
"""

from __future__ import annotations

import re

from kvmtune.errors import HostError
from kvmtune.grammar import digits

# the column that ends a device IRQ's chip part: "4-edge", "1-fasteoi", "Level" (GIC), "Edge"
TRIGGER = re.compile(r"(?:[0-9]+-)?(?:edge|level|fasteoi|Edge|Level|simple|bad)")
MAX_TEXT = 4 << 20  # /proc/interrupts on a large host: a line per IRQ, a column per CPU


def _columns(header: str) -> list[int]:
    return [int(w[3:]) for w in header.split() if w.startswith("CPU") and digits(w[3:])]


def parse_interrupts(text: str) -> dict[str, dict[int, int]]:
    """source -> {cpu: count}. A device IRQ's source is ``"<irq> <name>"`` (``"36 virtio1-req.0"``),
    a CPU vector's its short name (``LOC``); lines without a count per CPU (ERR, MIS) are left out."""
    lines = text.split("\n")
    if not lines or not lines[0].strip():
        return {}
    cpus = _columns(lines[0])
    out: dict[str, dict[int, int]] = {}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        label = label.strip()
        if not sep or not label:
            continue
        words = rest.split()
        counts = words[:len(cpus)]
        if len(counts) < len(cpus) or not all(digits(c) for c in counts):
            continue
        tail = words[len(cpus):]
        if digits(label):
            name = _irq_name(tail)
            source = f"{label} {name}" if name else label
        else:
            source = label
        out[source] = {cpu: int(c) for cpu, c in zip(cpus, counts)}
    return out


def _irq_name(tail: list[str]) -> str:
    """The handlers' names after the chip and trigger columns (``ahci[0000:00:1f.2], snd``)."""
    for i, word in enumerate(tail):
        if TRIGGER.fullmatch(word):
            return " ".join(tail[i + 1:])  # "" for an IRQ no handler has claimed
    return tail[-1] if len(tail) > 1 else ""


def parse_softirqs(text: str) -> dict[str, dict[int, int]]:
    """kind -> {cpu: count}."""
    lines = text.split("\n")
    if not lines:
        return {}
    cpus = _columns(lines[0])
    out = {}
    for line in lines[1:]:
        label, sep, rest = line.partition(":")
        counts = rest.split()[:len(cpus)]
        if sep and label.strip() and len(counts) == len(cpus) and all(digits(c) for c in counts):
            out[label.strip()] = {cpu: int(c) for cpu, c in zip(cpus, counts)}
    return out


def parse_cpu_stat(text: str) -> dict[int, tuple[int, int, int]]:
    """CPU -> (busy, steal, all) ticks from /proc/stat's per-CPU lines (fields as bench.interference
    reads the aggregate: guest time is already in user)."""
    from kvmtune.bench.interference import BUSY, IDLE, STEAL

    out = {}
    for line in text.split("\n"):
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or not digits(fields[0][3:]):
            continue
        values = [int(v) for v in fields[1:9] if digits(v)]
        if len(values) == 8:
            busy = sum(values[i] for i in BUSY)
            out[int(fields[0][3:])] = (busy, values[STEAL], busy + sum(values[i] for i in IDLE))
    return out


def shares(before: dict, after: dict, cpu: int, own_s: float, hz: int) -> dict:
    """steal_pct: what the hypervisor took of the CPU; others_pct: what every task and interrupt but
    the loop had (its busy time less the loop's own, ``own_s``), both over the counters' span."""
    if cpu not in before or cpu not in after:
        return {"steal_pct": None, "others_pct": None}
    busy, steal, total = (b - a for a, b in zip(before[cpu], after[cpu]))
    if total <= 0:
        return {"steal_pct": None, "others_pct": None}
    others = max(0.0, busy - steal - own_s * hz)
    return {"steal_pct": round(100 * steal / total, 1), "others_pct": round(min(100.0, 100 * others / total), 1)}


def parse_task(stat: str, schedstat: str | None) -> tuple[str, int | None, int, int] | None:
    """(name, last CPU, times given a CPU, ns on a CPU) of one thread; None if stat is not one.
    Without schedstat (a kernel without CONFIG_SCHED_INFO) the count is user+system ticks."""
    head, sep, tail = stat.rpartition(")")
    if not sep:
        return None
    comm = head.partition("(")[2]
    fields = tail.split()
    if len(fields) < 37:
        return None
    last = int(fields[36]) if digits(fields[36]) else None
    parts = (schedstat or "").split()
    if len(parts) >= 3 and digits(parts[0]) and digits(parts[2]):
        return comm, last, int(parts[2]), int(parts[0])
    ticks = sum(int(f) for f in fields[11:13] if digits(f))  # utime, stime (fields 14 and 15)
    return comm, last, ticks, 0


class Counters:
    """One reading of every counter, and the monotonic time it was taken at."""

    def __init__(self, host, with_tasks: bool = True):
        import time

        self.problems: list[str] = []
        self.irqs = parse_interrupts(self._read(host, "proc/interrupts"))
        self.softirqs = parse_softirqs(self._read(host, "proc/softirqs"))
        self.stat = parse_cpu_stat(self._read(host, "proc/stat"))
        self.tasks = {}
        if with_tasks:
            for key, (stat, sched) in host.task_samples().items():
                parsed = parse_task(stat, sched)
                if parsed is not None:
                    self.tasks[key] = parsed
        self.at = time.monotonic()

    def _read(self, host, rel: str) -> str:
        try:
            text = host.read_optional(rel, limit=MAX_TEXT)
        except HostError as exc:
            self.problems.append(f"/{rel}: {exc.reason}")
            return ""
        if text is None:
            self.problems.append(f"/{rel}: absent")
        return text or ""


def rates(before: dict[str, dict[int, int]], after: dict[str, dict[int, int]], cpu: int,
          seconds: float) -> dict[str, float]:
    """Per second on ``cpu`` between two readings, each source that moved, highest first. A
    counter that went back (an IRQ freed and reused) counts from zero."""
    out = {}
    for source, counts in after.items():
        if cpu not in counts:
            continue
        old = before.get(source, {}).get(cpu, 0)
        delta = counts[cpu] - old if counts[cpu] >= old else counts[cpu]
        if delta > 0:
            out[source] = round(delta / seconds, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def intruders(before: dict, after: dict, cpu: int, own_pid: int, top: int = 20) -> list[dict]:
    """The other threads whose last CPU at the end was ``cpu`` and that were given a CPU during
    the window: name, pid, tid, how many times, and their CPU time; most CPU time first."""
    out = []
    for (pid, tid), (comm, last, runs, ns) in after.items():
        if last != cpu or pid == own_pid:
            continue
        old = before.get((pid, tid))
        # by thread id alone: a kworker's name changes with the work it runs (kworker/1:2-mm_percpu_wq)
        ran = runs - old[2] if old and runs >= old[2] else runs
        if ran > 0:
            spent = ns - old[3] if old and ns >= old[3] else ns
            out.append({"comm": comm, "pid": pid, "tid": tid, "runs": ran, "cpu_ms": round(spent / 1e6, 2)})
    # the CPU time taken first: a busy thread with long turns outweighs a kworker's many short ones
    out.sort(key=lambda t: (-t["cpu_ms"], -t["runs"], t["comm"], t["tid"]))
    return out[:top]
