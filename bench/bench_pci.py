#!/usr/bin/env python3
"""Time check with the per-device checks against plain check, on the same PCI capture.

    .venv/bin/python bench/bench_pci.py [-n 31] [--root TREE] [--json]

The per-device checks (iommu.groups, pci.acs, sriov) read every PCI function; they run
only under their intents (``check --for passthrough,sriov``) or ``--only``. Target:
that run within 1.5x plain ``check --json`` on the same tree. Where ``--for`` is not
there yet, the same checks are named with ``--only`` beside all of plain check's.
Default tree: the largest PCI capture in tests/fixtures/pci/trees.tar.xz (the server,
trimmed to 85 functions; see SOURCES.md there); --root takes any other tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_check import run_once  # noqa: E402

ARCHIVE = REPO / "tests" / "fixtures" / "pci" / "trees.tar.xz"
TREE = "server-spr-aspeed-1fn-per-group"


def per_device_args(kvmtune: list[str]) -> list[str]:
    helptext = subprocess.run([*kvmtune, "check", "--help"], capture_output=True, text=True).stdout
    if "--for " in helptext or "--for\n" in helptext:  # not --format
        return ["--for", "passthrough,sriov"]
    from kvmtune.checks import REGISTRY

    return ["--only", ",".join(REGISTRY)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=31)
    parser.add_argument("--root", help="a tree (default: the server capture, unpacked from the fixtures)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # This checkout's code, whatever kvmtune the environment has installed.
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    kvmtune = [sys.executable, "-m", "kvmtune"]
    if args.root is None:
        import tarfile
        import tempfile

        unpacked = tempfile.mkdtemp(prefix="kvmtune-bench-pci-")
        with tarfile.open(ARCHIVE) as tar:
            tar.extractall(unpacked, members=[m for m in tar.getmembers() if m.name.split("/")[0] == TREE],
                           filter="data")
        args.root = os.path.join(unpacked, TREE)
        import atexit
        import shutil

        atexit.register(shutil.rmtree, unpacked, True)
    plain = [*kvmtune, "--root", args.root, "check", "--json"]
    devices = [*plain, *per_device_args(kvmtune)]
    for argv in (plain, devices):  # warm the page cache and .pyc files
        run_once(argv)
    times: dict[str, list[float]] = {"plain": [], "per-device": []}
    for _ in range(args.n):  # interleaved: drift on the machine hits both alike
        times["plain"].append(run_once(plain)[0])
        times["per-device"].append(run_once(devices)[0])
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["per-device"] / medians["plain"]
    result = {"root": args.root, "n": args.n, "plain_ms": round(medians["plain"] * 1000, 1),
              "per_device_ms": round(medians["per-device"] * 1000, 1), "ratio": round(ratio, 2),
              "per_device_args": devices[len(plain):], "target": 1.5}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"plain check      {result['plain_ms']:8.1f} ms (median of {args.n})")
        print(f"+ per-device     {result['per_device_ms']:8.1f} ms  ({' '.join(result['per_device_args'])[:60]})")
        print(f"ratio            {ratio:8.2f}  (target <= 1.5)")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
