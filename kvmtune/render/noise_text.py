"""bench's noise section for people: a bar per CPU (its longest detour, on a log scale), the
kernel's osnoise figures beside, the findings, and one line of conclusion. Only formats."""

from __future__ import annotations

import math

from kvmtune.bench.noise_judge import us

DECADES = 4  # the bar spans 1 us to 10 ms
COLUMNS = ("CPU", "longest detour", "max us", "p99.9", "p99.99", "lost", "others", "steal", "irq/s")


def bar(max_us: float, width: int, ascii_only: bool) -> str:
    cells = 0 if max_us <= 1 else round(min(math.log10(max_us), DECADES) / DECADES * width)
    return ("#" if ascii_only else "█") * max(cells, 1)


def lost(ppm: float) -> str:
    return f"{ppm:.0f} ppm" if ppm < 1000 else f"{ppm / 1e4:.2g} %"


def pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} %"


def rows(noise: dict, width: int, ascii_only: bool) -> list[list[str]]:
    out = []
    for cpu, row in noise["cpus"].items():
        if "error" in row:
            out.append([cpu, row["error"], "", "", "", "", "", "", ""])
            continue
        d = row["detours_us"]
        irqs = sum(row["irqs_per_s"].values())
        out.append([cpu, bar(d["max"], width, ascii_only), us(d["max"]), us(d["p999"]), us(d["p9999"]),
                    lost(row["lost_ppm"]), pct(row.get("others_pct")), pct(row.get("steal_pct")), f"{irqs:.0f}"])
    return out


def heading(noise: dict) -> str:
    from kvmtune.host.cpulist import format_cpulist

    cpus = format_cpulist(sorted(int(c) for c in noise["cpus"]))
    return (f"Noise on CPU {cpus} ({noise['chosen']}), {noise['duration_s']:g} s\n"
            f"A thread pinned to each CPU reads the TSC in a tight loop; a gap above {noise['threshold_us']:g} us "
            f"is a detour. Bar: the longest, 1 us to 10 ms on a log scale; p99.9 and p99.99 over the detours; "
            f"lost: the window's share spent in detours; others and steal: the CPU's time other tasks and "
            f"interrupts had, and the hypervisor took")


def osnoise_lines(noise: dict) -> list[str]:
    figures = noise.get("osnoise")
    if not figures:
        return [f"osnoise: not run: {noise.get('osnoise_skipped') or 'not asked for'}"]
    out = [f"osnoise (the kernel's tracer, {figures['tracefs']}, {figures['seconds']:g} s after kvmtune's window):"]
    for cpu, row in figures["cpus"].items():
        available = f"{row['available_pct']:g} % available" if row["available_pct"] is not None else "no runtime"
        out.append(f"  CPU {cpu}: {row['noise_us']} us of noise in {row['runtime_us']} us ({available}), longest "
                   f"{row['max_single_us']} us; HW {row['hw']} NMI {row['nmi']} IRQ {row['irq']} SIRQ {row['sirq']} "
                   f"THREAD {row['thread']}")
    if not figures["cpus"]:
        out.append("  the tracer wrote no period summary in the window")
    return out


def calibration_line(noise: dict) -> str:
    return f"TSC {noise['tsc_mhz']:.1f} MHz ({noise['tsc_calibration']})"
