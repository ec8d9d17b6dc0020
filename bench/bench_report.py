#!/usr/bin/env python3
"""Time ``kvmtune report`` over N hosts' results (target: 10,000 in <= 2 s on two CPUs).

The results are this machine's live ``check --json`` varied per host (bench/fleet.py):
whole results, about 16 KB each, one file per host as ``ansible --tree`` leaves them.

    python bench/bench_report.py [--hosts 10000] [-n 7]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fleet import env, kvmtune_cmd, write_fleet  # noqa: E402


def timed(argv: list[str], n: int) -> tuple[list[float], list[float], str]:
    """Wall and CPU (user + sys, the command and its workers) seconds of n runs; the last output."""
    walls, cpus = [], []
    for _ in range(n):
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env())
        walls.append(time.perf_counter() - start)
        after = os.times()
        cpus.append(after.children_user + after.children_system - before.children_user - before.children_system)
    return walls, cpus, proc.stdout


def line(what: str, hosts: int, size: int, walls: list[float], cpus: list[float], target_ms: int) -> str:
    return (f"{what}, {hosts} hosts ({size / 1e6:.1f} MB of results): median {statistics.median(walls) * 1000:.0f} ms, "
            f"min {min(walls) * 1000:.0f}, max {max(walls) * 1000:.0f} (CPU {statistics.median(cpus) * 1000:.0f} ms; "
            f"target <= {target_ms} ms)")


def measure(command: str, doc: str) -> tuple[argparse.Namespace, int, list[float], list[float], dict]:
    """Parse --hosts and -n, write the fleet, time ``kvmtune COMMAND TREE --json`` n times:
    (arguments, bytes of results, wall and CPU seconds, the last output)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("-n", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = os.path.join(tmp, "tree")
        size = write_fleet(tree, args.hosts)
        walls, cpus, out = timed(kvmtune_cmd() + [command, tree, "--json"], args.n)
    return args, size, walls, cpus, json.loads(out)


def main() -> int:
    args, size, walls, cpus, summary = measure("report", __doc__)
    assert summary["counts"]["hosts"] == args.hosts, summary["counts"]
    print(line("kvmtune report", args.hosts, size, walls, cpus, 2000))
    print(f"  {summary['counts']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
