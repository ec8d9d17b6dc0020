#!/usr/bin/env python3
"""Record how long ``kvmtune bench --quick`` and the default run take here, and what they found.

Each run's wall time, its own elapsed_s, the headline ratio (hugetlb-2M or THP over
4K, 2M guest pages) and whether the host read back as before. The targets: --quick within
20 s (issue 20), the default run within 90 s (its rounds end by a 60 s budget; exits and KSM follow).

    python bench/bench_bench.py [-n 1] [--grow-pools] [--ksm] [--skip-default]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def one(extra: list[str]) -> tuple[float, dict]:
    began = time.perf_counter()
    # This checkout's code, whatever kvmtune the interpreter has installed.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(kvmtune_cmd() + ["bench", "--json", *extra], capture_output=True, text=True,
                          cwd=REPO, env=env)
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"kvmtune bench {' '.join(extra)} exited {proc.returncode}: {proc.stderr.strip()}")
    return wall, json.loads(proc.stdout)


def headline(result: dict) -> str:
    rows = {(r["backing"], r["guest_page"]): r for r in result["memory"]}
    parts = []
    for kind in ("thp", "hugetlb-2M", "hugetlb-1G"):
        row = rows.get((kind, "2M"))
        if row and row["ratio_vs_4k"] is not None:
            parts.append(f"{kind} {row['ratio_vs_4k']:.2f}")
    return ", ".join(parts) or "no huge backing measured"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1, help="runs of each")
    parser.add_argument("--grow-pools", action="store_true")
    parser.add_argument("--ksm", action="store_true")
    parser.add_argument("--skip-default", action="store_true", help="time --quick only")
    args = parser.parse_args()
    extra = (["--grow-pools"] if args.grow_pools else []) + (["--ksm"] if args.ksm else [])
    modes = [("--quick", ["--quick"], 20.0)] + ([] if args.skip_default else [("default", [], 90.0)])
    for name, flags, target in modes:
        walls = []
        for _ in range(args.n):
            wall, result = one(flags + extra)
            walls.append(wall)
            print(f"{name:8} {wall:6.1f} s wall ({result['elapsed_s']:.1f} s measuring), "
                  f"{result['settings']['size'] >> 20} MiB, vs 4K (2M guest pages): {headline(result)}; "
                  f"host restored: {result['host_restored']}")
        verdict = "within" if max(walls) <= target else "OVER"
        print(f"{name:8} median {statistics.median(walls):.1f} s, max {max(walls):.1f} s: {verdict} the "
              f"{target:g} s target")


if __name__ == "__main__":
    main()
