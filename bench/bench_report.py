#!/usr/bin/env python3
"""Time ``kvmtune report`` over N generated hosts' ``check --json`` results (target: 1,000 in < 1 s).

The results are real ``check --json`` output of synthetic hosts, varied per host
(hostname, readiness, NUMA shape, huge pages, KSM savings), written one file per
host as ``ansible --tree`` leaves them.

    python bench/bench_report.py [--hosts 1000] [-n 7]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.synthetic import SYNTHETIC, write_tree  # noqa: E402


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def base_results(tmp: str) -> list[dict]:
    out = []
    for name in ("synthetic-intel-vtx", "synthetic-no-dev-kvm", "synthetic-hugepage-pools",
                 "synthetic-ksm-running", "synthetic-amd-sev"):
        root = write_tree(os.path.join(tmp, name), SYNTHETIC[name]())
        proc = subprocess.run(kvmtune_cmd() + ["--root", root, "check", "--json"], capture_output=True, text=True)
        out.append(json.loads(proc.stdout))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("-n", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bases = base_results(tmp)
        tree = os.path.join(tmp, "tree")
        os.mkdir(tree)
        size = 0
        for i in range(args.hosts):
            result = copy.deepcopy(bases[i % len(bases)])
            result["host"]["hostname"] = f"hv{i:04d}.example"
            result["host"]["ksm"]["saved_bytes"] = (i % 7) << 30
            text = json.dumps({"changed": False, **result})
            size += len(text)
            with open(os.path.join(tree, f"hv{i:04d}.example"), "w") as f:
                f.write(text)
        walls = []
        for _ in range(args.n):
            start = time.perf_counter()
            proc = subprocess.run(kvmtune_cmd() + ["report", tree, "--json"], capture_output=True, text=True)
            walls.append(time.perf_counter() - start)
        summary = json.loads(proc.stdout)
    assert summary["counts"]["hosts"] == args.hosts, summary["counts"]
    print(f"kvmtune report, {args.hosts} hosts ({size / 1e6:.1f} MB of results): "
          f"median {statistics.median(walls) * 1000:.0f} ms, max {max(walls) * 1000:.0f} ms (target < 1000 ms)")
    print(f"  {summary['counts']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
