#!/usr/bin/env python3
"""Time ``kvmtune watch --once`` with a profile applied (target: at most 150 ms).

A synthetic 2-node host tree gets the profile; then N passes of ``watch --once`` (verify, metrics,
no drift) are timed, median and p90. With --live (root), the same on this machine's kernel,
rolled back at the end. Python's byte-code cache goes to a temporary directory (an installed
kvmtune has its .pyc files; the checkout is left as it was).

    python bench/bench_watch.py [-n 21] [--profile dense] [--live]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.synthetic import host, write_tree  # noqa: E402

TARGET_MS = 150


def timed(argv: list[str], n: int, env: dict) -> list[float]:
    subprocess.run(argv, capture_output=True, env=env)  # warm: the byte-code cache and the page cache
    walls = []
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"watch --once found drift or failed: {proc.stdout[-300:]} {proc.stderr}")
    return walls


def report(name: str, walls: list[float]) -> float:
    walls.sort()
    median = statistics.median(walls) * 1000
    print(f"{name:52} median {median:6.1f} ms   p90 {walls[int(0.9 * (len(walls) - 1))] * 1000:6.1f} ms   "
          f"(target <= {TARGET_MS} ms)")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=21)
    parser.add_argument("--profile", default="dense")
    parser.add_argument("--live", action="store_true", help="also on the live kernel (root; rolled back)")
    args = parser.parse_args()
    kvmtune = [sys.executable, str(REPO / "bin" / "kvmtune")]
    medians = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(PYTHONPATH=str(REPO), PYTHONPYCACHEPREFIX=os.path.join(tmp, "pyc"))
        metrics = os.path.join(tmp, "metrics")
        os.mkdir(metrics)
        root = write_tree(os.path.join(tmp, "host"), host())
        subprocess.run(kvmtune + ["--root", root, "apply", args.profile], check=True, capture_output=True, env=env)
        watch = ["watch", "--once", "--metrics-dir", metrics]
        medians.append(report(f"watch --once, {args.profile} applied (2-node snapshot)",
                              timed(kvmtune + ["--root", root] + watch, args.n, env)))
        if args.live:
            subprocess.run(kvmtune + ["apply", args.profile], check=True, capture_output=True, env=env)
            try:
                medians.append(report(f"watch --once, {args.profile} applied (live kernel)",
                                      timed(kvmtune + watch, args.n, env)))
            finally:
                subprocess.run(kvmtune + ["rollback"], check=True, capture_output=True, env=env)
    return 0 if max(medians) <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
