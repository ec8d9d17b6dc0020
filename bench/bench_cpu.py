#!/usr/bin/env python3
"""Time ``kvmtune cpu-models`` (target < 150 ms) and ``cpu-baseline`` over N hosts' results (< 1 s).

    python bench/bench_cpu.py [--hosts 1000] [-n 11]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def timed(argv: list[str], n: int) -> tuple[float, str]:
    walls, out = [], ""
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        out = proc.stdout
    return statistics.median(walls) * 1000, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("-n", type=int, default=11)
    args = parser.parse_args()
    kvmtune = kvmtune_cmd()
    ms, out = timed(kvmtune + ["cpu-models", "--json"], args.n)
    print(f"cpu-models --json (source: {json.loads(out)['source']}): median {ms:.0f} ms (target < 150 ms)")
    dumps = ["intel-gold6230-80c-4n-snc", "intel-silver4108-32c-2n", "kvm-nested-offline-cpus",
             "intel-l5640-24c-2n", "intel-i7-1370p-hybrid"]
    bases = []
    for name in dumps:
        proc = subprocess.run(kvmtune + ["--root", str(REPO / "tests/fixtures/hosts" / name), "check", "--json"],
                              capture_output=True, text=True)
        bases.append(json.loads(proc.stdout))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.hosts):
            result = bases[i % len(bases)]
            result["host"]["hostname"] = f"hv{i:04d}"
            with open(os.path.join(tmp, f"hv{i:04d}.json"), "w") as f:
                json.dump(result, f)
        ms, out = timed(kvmtune + ["cpu-baseline", tmp, "--json"], max(3, args.n // 3))
    data = json.loads(out)
    print(f"cpu-baseline over {args.hosts} hosts: median {ms:.0f} ms (target < 1000 ms); "
          f"baseline {data['baseline']}, held back from {data['held_back']['model'] if data['held_back'] else '-'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
