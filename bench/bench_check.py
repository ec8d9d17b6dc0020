#!/usr/bin/env python3
"""Time ``kvmtune check`` against virt-host-validate and kvm-ok, side by side, in one run.

Each command runs N times (interleaved, so drift on the machine hits all of them
alike); the table shows median and 90th-percentile wall time, peak RSS of the
child, and the ratio to ``kvmtune check --json``. Peers that are not installed
are listed with the package that provides them (Debian: libvirt-clients,
cpu-checker).

    .venv/bin/python bench/bench_check.py [-n 31] [--json]

Run it with the Python of a virtual environment where kvmtune is pip-installed (its
bytecode compiled, as pip does), so that ``python -c pass`` and ``kvmtune`` start alike.
Targets: ``check --json`` within 2.5x ``python -c pass``; the 1024-CPU snapshot within
1.3x the 2-CPU one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.synthetic import big_1024cpu_16node, intel_vtx, write_tree  # noqa: E402


def kvmtune_cmd() -> list[str]:
    script = Path(sys.executable).with_name("kvmtune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kvmtune"]


def run_once(argv: list[str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit code) of one child.

    RSS comes from GNU time: a child forked from this Python process would count
    the parent's pages in its ru_maxrss before exec.
    """
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        code = subprocess.call(["/usr/bin/time", "-f", "%M", "-o", rss.name] + argv,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        text = rss.read().strip().splitlines()
    return wall, int(text[-1]) if text and text[-1].isdigit() else 0, code


def bench(commands: dict[str, list[str]], n: int) -> dict[str, dict]:
    samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in commands}
    for argv in commands.values():  # warm the page cache and .pyc files
        run_once(argv)
    for _ in range(n):
        for name, argv in commands.items():
            samples[name].append(run_once(argv))
    out = {}
    for name, runs in samples.items():
        walls = sorted(w for w, _, _ in runs)
        out[name] = {
            "argv": commands[name],
            "median_ms": round(statistics.median(walls) * 1000, 1),
            "p90_ms": round(walls[int(0.9 * (len(walls) - 1))] * 1000, 1),
            "max_rss_mib": round(max(r for _, r, _ in runs) / 1024, 1),
            "exit_codes": sorted({c for _, _, c in runs}),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=31, help="runs per command (default 31)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    kvmtune = kvmtune_cmd()
    with tempfile.TemporaryDirectory() as tmp:
        small = write_tree(os.path.join(tmp, "small"), intel_vtx())
        big = write_tree(os.path.join(tmp, "big"), big_1024cpu_16node())
        commands = {
            "python -c pass (interpreter start, for scale)": [sys.executable, "-c", "pass"],
            "kvmtune check --json": kvmtune + ["check", "--json"],
            "kvmtune check (report)": kvmtune + ["check"],
            "kvmtune check --json (2-CPU snapshot)": kvmtune + ["--root", small, "check", "--json"],
            "kvmtune check --json (1024-CPU snapshot)": kvmtune + ["--root", big, "check", "--json"],
        }
        missing = {}
        for name, argv, package in (("virt-host-validate qemu", ["virt-host-validate", "qemu"], "libvirt-clients"),
                                    ("kvm-ok", ["kvm-ok"], "cpu-checker")):
            if shutil.which(argv[0]):
                commands[name] = argv
            else:
                missing[name] = f"not installed (apt-get install {package})"
        results = bench(commands, args.n)

    base = results["kvmtune check --json"]["median_ms"]
    for r in results.values():
        r["ratio_to_kvmtune_json"] = round(r["median_ms"] / base, 2)
    big_ratio = round(results["kvmtune check --json (1024-CPU snapshot)"]["median_ms"]
                      / results["kvmtune check --json (2-CPU snapshot)"]["median_ms"], 2)
    start_ratio = round(base / results["python -c pass (interpreter start, for scale)"]["median_ms"], 2)
    if args.json:
        json.dump({"runs": args.n, "results": results, "missing": missing,
                   "ratio_1024_to_2_cpu": big_ratio, "ratio_check_json_to_python": start_ratio},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"{'command':44} {'median':>9} {'p90':>9} {'peak RSS':>9} {'ratio':>6}  exit")
    for name, r in results.items():
        print(f"{name:44} {r['median_ms']:7.1f}ms {r['p90_ms']:7.1f}ms {r['max_rss_mib']:6.1f}MiB "
              f"{r['ratio_to_kvmtune_json']:6.2f}  {','.join(map(str, r['exit_codes']))}")
    for name, why in missing.items():
        print(f"{name:44} {why}")
    print(f"\ncheck --json / python -c pass: {start_ratio}x (target <= 2.5x)")
    print(f"1024-CPU / 2-CPU snapshot: {big_ratio}x (target <= 1.3x); {args.n} runs each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
