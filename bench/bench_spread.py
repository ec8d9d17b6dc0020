#!/usr/bin/env python3
"""Run ``kvmtune bench --json`` N times and print each figure's spread: the README's figures come from this.

For every ratio: its range over the runs, the coefficient of variation, and how often each
verdict was given (a figure that says faster in one run and slower in another would show
both); for the walk, the exits, a fresh VM's start and the run time: the range. Also how
many runs found the host disturbed.

    python bench/bench_spread.py [-n 5] [--quick] [--grow-pools] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from bench_bench import one


def collect(results: list[tuple[float, dict]]) -> tuple[dict[str, list[float]], dict[str, Counter]]:
    values: dict[str, list[float]] = {}
    verdicts: dict[str, Counter] = {}

    def add(name: str, value) -> None:
        if value is not None:
            values.setdefault(name, []).append(value)

    for wall, result in results:
        for row in result["memory"] + result["native"]:
            where = f"guest {row['guest_page']} pages" if "guest_page" in row else "native"
            if row["backing"] == "4k" and row["ns_per_access"] and where != "guest 4K pages":
                add(f"walk ns, 4K host pages, {where}", row["ns_per_access"]["median"])
            if row["backing"] != "4k" and row["ratio_vs_4k"] is not None:
                name = f"{row['backing']} vs 4K, {where}"
                add(name, row["ratio_vs_4k"])
                verdicts.setdefault(name, Counter())[row["verdict"]] += 1
        exits = result["exits"] or {}
        for kind in ("kernel_pio", "cpuid", "user_pio", "mmio"):
            add(f"exit {kind} us", exits.get(f"{kind}_us"))
            add(f"exit {kind} cycles", (exits.get("cycles") or {}).get(kind))
        for key in ("vm_create_ms", "vcpu_create_ms", "first_run_ms"):
            add(key.replace("_", " "), exits.get(key))
        add("rounds", result.get("rounds_run"))
        add("wall s", wall)
        add("steal %", result.get("steal_pct"))
    return values, verdicts


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    fmt = "{:.2f}" if high < 10 else "{:.0f}"
    cv = statistics.pstdev(values) / statistics.mean(values) if len(values) > 1 and statistics.mean(values) else 0
    return f"{fmt.format(low)}-{fmt.format(high)} (median {fmt.format(statistics.median(values))}, cv {cv:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="runs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--grow-pools", action="store_true")
    parser.add_argument("--markdown", action="store_true", help="a table for the README")
    args = parser.parse_args()
    flags = (["--quick"] if args.quick else []) + (["--grow-pools"] if args.grow_pools else [])
    results = [one(flags) for _ in range(args.n)]
    values, verdicts = collect(results)
    disturbed = sum(1 for _, r in results if r.get("disturbed"))
    title = f"{args.n} runs of kvmtune bench {' '.join(flags)}".rstrip()
    if args.markdown:
        print(f"| {title} | range over the runs | verdicts |\n|---|---|---|")
    else:
        print(f"{title}; the host was disturbed in {disturbed}")
    for name, vals in values.items():
        said = ", ".join(f"{v} {n}" for v, n in sorted(verdicts.get(name, Counter()).items()))
        if args.markdown:
            print(f"| {name} | {spread(vals)} | {said} |")
        else:
            print(f"  {name:34} {spread(vals)}" + (f"   verdicts: {said}" if said else ""))
    if args.markdown:
        print(f"\nThe host was disturbed in {disturbed} of {args.n} runs.")


if __name__ == "__main__":
    main()
