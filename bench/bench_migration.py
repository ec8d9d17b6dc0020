#!/usr/bin/env python3
"""Time ``kvmtune migration`` over N hosts' results (target: 10,000 in <= 2 s on two CPUs).

The same fleet as bench_report.py (bench/fleet.py): this machine's live ``check --json``
varied per host, with TSC frequencies a few ppm apart, some hosts far off, some on an older
QEMU, some with other microcode.

    python bench/bench_migration.py [--hosts 10000] [-n 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_report import line, measure  # noqa: E402


def main() -> int:
    args, size, walls, cpus, result = measure("migration", __doc__)
    placed = sum(len(d["hosts"]) for d in result["domains"])
    assert placed + len(result["excluded"]) == args.hosts, (placed, len(result["excluded"]))
    print(line("kvmtune migration", args.hosts, size, walls, cpus, 2000))
    print(f"  {len(result['domains'])} domains ({placed} hosts), {len(result['excluded'])} outside, "
          f"{len(result['one_way'])} one-way moves, {len(result['warnings'])} warnings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
