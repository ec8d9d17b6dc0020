"""What the noise counters say, in sentences that name the cause; one line of conclusion;
the figures --compare sets side by side. Pure: dicts in, text and dicts out."""

from __future__ import annotations

from kvmtune.grammar import digits

TICK_RUNNING = 20.0  # LOC/s: a stopped tick (nohz_full in effect) leaves about 1/s; HZ is 100 to 1000
IRQ_NOTED = 1.0  # device interrupts per second worth naming
IPI_NOTED = 10.0
SOFTIRQ_NOTED = 50.0
QUIET_MAX_US = 20.0  # a CPU whose longest detour stays below this, and that loses little, is quiet
QUIET_PPM = 100.0
SHARE_NOTED = 1.0  # % of the CPU taken by the hypervisor or by other tasks worth a sentence
IPIS = {"RES": "rescheduling IPIs (RES): another CPU woke a task here",
        "CAL": "function-call IPIs (CAL): another CPU asked this one to run a function",
        "TLB": "TLB shootdowns (TLB): a process with threads here changed its memory mappings"}
SOFTIRQS = {"RCU": "RCU callbacks run here (rcu_nocbs= moves them to other CPUs)",
            "TIMER": "timers expire here", "NET_RX": "network receive work lands here",
            "NET_TX": "network transmit work lands here", "BLOCK": "block I/O completions land here",
            "SCHED": "the scheduler balances load here"}


def is_device(source: str) -> bool:
    """A device IRQ (``"36 virtio1-req.0"``), not one of the CPU's own vectors (``LOC``)."""
    return digits(source.partition(" ")[0])


def _tick_reason(cpu: int, row: dict, facts: dict) -> str:
    if facts.get("kernel_nohz_full") is False:
        return "this kernel has no nohz_full: CONFIG_NO_HZ_FULL is not set"
    if cpu not in facts.get("nohz_full", []):
        where = ("not on the command line" if not facts.get("nohz_full_arg")
                 else f"CPU {cpu} is not in nohz_full={facts['nohz_full_arg']}")
        return f"nohz_full not in effect: {where}"
    others = [t["comm"] for t in row.get("intruders", [])]
    if others:
        return f"nohz_full not in effect: more than one task runnable ({', '.join(others[:3])} ran here)"
    return "nohz_full is set but the tick kept running with one task: a timer or RCU work keeps it"


def cpu_findings(cpu: int, row: dict, facts: dict) -> list[str]:
    if "error" in row:
        return [f"CPU {cpu}: {row['error']}"]
    out = []
    isolated = "isolated " if cpu in facts.get("isolated", []) else ""
    if (row.get("steal_pct") or 0) >= SHARE_NOTED:
        out.append(f"CPU {cpu}: the hypervisor took {row['steal_pct']:g} % of it (steal time)")
    if (row.get("others_pct") or 0) >= SHARE_NOTED:
        # the threads named next ran here last, but may have run elsewhere too, and tasks that ended
        # in the window are not seen at all: their times do not add up to this share
        out.append(f"CPU {cpu}: other tasks and interrupts had {row['others_pct']:g} % of it")
    for t in row["intruders"][:3]:
        out.append(f"CPU {cpu}: {t['comm']} (pid {t['pid']}) ran {t['runs']} times ({ms(t['cpu_ms'])} ms)")
    for source, rate in row["irqs_per_s"].items():
        if is_device(source) and rate >= IRQ_NOTED:
            irq, _, name = source.partition(" ")
            out.append(f"IRQ {irq}{f' ({name})' if name else ''} fires {per_s(rate)}/s on {isolated}CPU {cpu}")
    loc = row["irqs_per_s"].get("LOC", 0.0)
    if loc >= TICK_RUNNING:
        out.append(f"CPU {cpu}: {loc:.0f} local timer interrupts/s: the tick is running ({_tick_reason(cpu, row, facts)})")
    for name, what in IPIS.items():
        rate = row["irqs_per_s"].get(name, 0.0)
        if rate >= IPI_NOTED:
            out.append(f"CPU {cpu}: {rate:.0f}/s {what}")
    for kind, rate in row["softirqs_per_s"].items():
        if rate >= SOFTIRQ_NOTED:
            out.append(f"CPU {cpu}: {rate:.0f} {kind} softirqs/s: {SOFTIRQS.get(kind, 'softirq work')}")
    return out


def findings(noise: dict, facts: dict) -> list[str]:
    out = []
    for cpu, row in noise["cpus"].items():
        out += cpu_findings(int(cpu), row, facts)
    return out


def _cause(cpu: int, row: dict) -> str:
    """The first cause the counters name for a noisy CPU: the larger of the hypervisor's and other
    tasks' share, then the busiest thread, a device IRQ, the tick."""
    window_ms = row.get("window_s", 1.0) * 1000
    steal, others = row.get("steal_pct") or 0, row.get("others_pct") or 0
    top = row["intruders"][0] if row["intruders"] else None
    if max(steal, others) >= SHARE_NOTED:
        if steal >= others:
            return f"the hypervisor took {steal:g} % of the CPU (steal), other tasks {others:g} %"
        busiest = f", most {top['comm']} (pid {top['pid']}, {ms(top['cpu_ms'])} ms)" if top else ""
        return f"other tasks had {others:g} % of the CPU{busiest}; the hypervisor {steal:g} % (steal)"
    if top and top["cpu_ms"] >= 0.01 * window_ms:
        return f"{top['comm']} (pid {top['pid']}) ran {top['runs']} times there ({ms(top['cpu_ms'])} ms)"
    devices = [(s, r) for s, r in row["irqs_per_s"].items() if is_device(s) and r >= IRQ_NOTED]
    if devices:
        source, rate = devices[0]
        return f"IRQ {source} fires {per_s(rate)}/s there"
    if row["irqs_per_s"].get("LOC", 0) >= TICK_RUNNING:
        return f"the tick runs there ({row['irqs_per_s']['LOC']:.0f}/s)"
    return "no counter names a cause: the hypervisor (steal) or the hardware took the time"


def conclusion(noise: dict) -> str:
    rows = {int(c): r for c, r in noise["cpus"].items() if "error" not in r}
    if not rows:
        return "no CPU could be measured"
    worst = max(rows, key=lambda c: (rows[c]["lost_ppm"], rows[c]["detours_us"]["max"]))
    row = rows[worst]
    if all(r["detours_us"]["max"] < QUIET_MAX_US and r["lost_ppm"] < QUIET_PPM for r in rows.values()):
        highest = max(r["detours_us"]["max"] for r in rows.values())
        return (f"CPU {_list(rows)} quiet: no detour above {us(highest)} us, at most "
                f"{max(r['lost_ppm'] for r in rows.values()):g} ppm of the time lost")
    which = f"the noisiest of {_list(rows)}" if len(rows) > 1 else "noisy"
    return (f"CPU {worst} is {which}: detours up to {us(row['detours_us']['max'])} us, "
            f"{row['lost_ppm'] / 1e4:.2g} % of its time lost; {_cause(worst, row)}")


def us(value: float) -> str:
    """Microseconds as people read them: 20029 rather than 20028.7, 4.2 below 100."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def per_s(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 10 else f"{rate:g}"


def ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.2g}"


def _list(rows) -> str:
    from kvmtune.host.cpulist import format_cpulist

    return format_cpulist(sorted(rows))


def figures(noise: dict | None) -> dict[str, float]:
    """The comparable numbers of a noise section (lower is better for each)."""
    out = {}
    for cpu, row in ((noise or {}).get("cpus") or {}).items():
        if "error" in row:
            continue
        key = f"noise cpu {cpu}"
        out[f"{key} max detour us"] = row["detours_us"]["max"]
        out[f"{key} p99.9 detour us"] = row["detours_us"]["p999"]
        out[f"{key} lost ppm"] = row["lost_ppm"]
        for source, rate in row["irqs_per_s"].items():
            out[f"{key} irq {source} /s"] = rate
        out[f"{key} device irqs /s"] = round(sum(r for s, r in row["irqs_per_s"].items() if is_device(s)), 1)
        out[f"{key} intruder runs"] = sum(t["runs"] for t in row["intruders"])
    return out
