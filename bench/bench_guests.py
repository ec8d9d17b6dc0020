#!/usr/bin/env python3
"""Time ``kvmtune guests --json`` with N real QEMU guests running (the target: <= 100 ms for ten).

Starts N small idle guests (``-accel kvm -cpu pentium3 -m 64``, no disk: they sit in the
firmware), waits until kvmtune sees all of them, then times kvmtune guests --json
(median of -r runs) beside ``python -c pass`` of the same interpreter, and kills
every guest it started, also on Ctrl-C. Root, /dev/kvm and qemu-system-x86_64 needed.

    python bench/bench_guests.py [-n 10] [-r 21]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def idle_share(seconds: float = 1.0) -> float:
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def settle(limit_s: float = 90.0) -> None:
    """Wait until the guests have booted their firmware and idle (emulated real mode keeps the
    CPUs busy for a while after start): timing a saturated machine measures the machine."""
    end = time.perf_counter() + limit_s
    while time.perf_counter() < end:
        share = idle_share()
        if share >= 0.8:
            return
    print(f"warning: the CPUs are still only {share:.0%} idle after {limit_s:g} s", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="guests to start")
    parser.add_argument("-r", type=int, default=21, help="timed runs")
    args = parser.parse_args()
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        sys.exit("qemu-system-x86_64 is not installed")
    procs = []
    try:
        for i in range(args.n):
            procs.append(subprocess.Popen([qemu, "-accel", "kvm", "-cpu", "pentium3", "-m", "64", "-name",
                                           f"bench-{i}", "-display", "none", "-monitor", "none", "-serial", "none",
                                           "-nodefaults"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        pids = {p.pid for p in procs}
        for _ in range(300):
            out = subprocess.run(kvmtune_cmd() + ["guests", "--json"], capture_output=True, text=True).stdout
            seen = {g["pid"] for g in json.loads(out)["guests"]} & pids
            if seen == pids:
                break
            time.sleep(0.1)
        else:
            sys.exit(f"kvmtune saw {len(seen)} of {len(pids)} guests")
        settle()
        guests = timed(kvmtune_cmd() + ["guests", "--json"], args.r)
        baseline = timed([sys.executable, "-c", "pass"], args.r)
        print(f"kvmtune guests --json with {args.n} guests: {guests:.1f} ms median of {args.r} "
              f"(python -c pass: {baseline:.1f} ms, {guests / baseline:.2f}x)")
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
