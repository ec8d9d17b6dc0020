#!/usr/bin/env python3
"""Time ``kvmtune apply`` of a profile that is already in place, and prove it writes nothing.

A synthetic 2-node host tree gets the profile once; then N more applies are
timed (median, p90) and the tree (content and mtimes of every file) is compared
before and after them. With --live (root), the same on this machine's kernel,
rolled back at the end.

    python bench/bench_apply.py [-n 31] [--profile dense] [--live]
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


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def fingerprint(root: str) -> dict:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            with open(p, "rb") as fh:
                out[p] = (fh.read(), st.st_mtime_ns)
    return out


def timed(argv: list[str], n: int) -> list[float]:
    walls = []
    for _ in range(n):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0 or '"changed": false' not in proc.stdout.replace('"changed":false', '"changed": false'):
            sys.exit(f"apply did not report an unchanged host: {proc.stdout[:300]} {proc.stderr}")
    return walls


def report(name: str, walls: list[float]) -> None:
    walls.sort()
    print(f"{name:52} median {statistics.median(walls) * 1000:6.1f} ms   "
          f"p90 {walls[int(0.9 * (len(walls) - 1))] * 1000:6.1f} ms   (target < 150 ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=31)
    parser.add_argument("--profile", default="dense")
    parser.add_argument("--live", action="store_true", help="also on the live kernel (root; rolled back)")
    args = parser.parse_args()
    kvmtune = kvmtune_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_tree(os.path.join(tmp, "host"), host())
        subprocess.run(kvmtune + ["--root", root, "apply", args.profile, "--json"], check=True,
                       capture_output=True)
        before = fingerprint(root)
        walls = timed(kvmtune + ["--root", root, "apply", args.profile, "--json"], args.n)
        writes = [p for p, v in fingerprint(root).items() if before.get(p) != v]
        report(f"apply {args.profile} (in place, 2-node snapshot)", walls)
        print(f"{'files written by those applies':52} {len(writes)}")
    if args.live:
        subprocess.run(kvmtune + ["apply", args.profile, "--json"], check=True, capture_output=True)
        try:
            report(f"apply {args.profile} (in place, live kernel)",
                   timed(kvmtune + ["apply", args.profile, "--json"], args.n))
        finally:
            subprocess.run(kvmtune + ["rollback", "--json"], check=True, capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
