"""A fleet of N hosts' results for the fleet benchmarks: this machine's own live
``kvmtune check --json`` (about 16 KB), varied per host, one file per host as
``ansible --tree`` leaves them. Results are whole, never trimmed: parsing them is the cost.

Per host: the hostname; readiness (one in five fails kvm.device); KSM savings; huge pages
free; and host.migration (issue #21's keys: where the result has none yet, this machine's
TSC frequency and versions are filled in), with TSC frequencies spread over a few ppm as
real calibrations are, one host in 97 far off, one in 89 on an older QEMU, and microcode
that differs on one host in 53.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent


def kvmtune_cmd() -> list[str]:
    """This checkout's kvmtune (bin/kvmtune, as installed; run with env() so it imports this
    checkout's package, not an installed one)."""
    return [sys.executable, str(REPO / "bin" / "kvmtune")]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def live_result() -> dict:
    """This host's check --json (live: the result a fleet's hosts would send)."""
    proc = subprocess.run(kvmtune_cmd() + ["check", "--json"], capture_output=True, text=True, env=env())
    if not proc.stdout.startswith("{"):
        raise SystemExit(f"kvmtune check --json gave no result: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def migration_facts(result: dict) -> dict:
    """The result's own host.migration, with what plain check leaves null (package versions are
    read only with --for migration) filled in as a fleet's results would have them."""
    given = result["host"].get("migration")
    given = {k: v for k, v in given.items() if v is not None} if isinstance(given, dict) else {}
    return {**DEFAULTS, **given}


DEFAULTS = {"tsc_khz": 2599998, "tsc_source": "kernel-log", "invariant_tsc": True, "tsc_scaling": False,
            "clocksource": "tsc", "microcode": "0xa201016", "kernel": "6.18.0", "qemu": "7.2.0",
            "libvirt": "9.0.0", "machine_types": ["pc-i440fx-7.2", "pc-q35-7.2", "microvm"]}


def vary(base: dict, i: int) -> dict:
    result = copy.deepcopy(base)
    host = result["host"]
    host["hostname"] = f"hv{i:05d}.example"
    host["ksm"]["saved_bytes"] = (i % 7) << 30
    mig = host["migration"] = copy.deepcopy(migration_facts(base))
    mig["microcode"] = DEFAULTS["microcode"]  # one microcode, but for the hosts below
    mig["tsc_khz"] += (i * 7) % 11 - 5  # a few ppm apart, as refined calibrations are
    if i % 97 == 13:
        mig["tsc_khz"] -= mig["tsc_khz"] // 1000  # 1000 ppm off
    if i % 89 == 7:
        mig["qemu"] = "6.2.0"
    if i % 53 == 5:
        mig["microcode"] = "0xa201009"
    for pool in host["memory"]["hugepages"]["pools"].values():
        pool["total"] = pool["free"] = (i % 5) * (512 if pool["size_kb"] == 2048 else 1)
    if i % 5 == 4:
        for check in result["checks"]:
            if check["id"] == "kvm.device":
                check["status"], check["detail"] = "fail", "/dev/kvm is missing"
        result["ready"] = False
        result["ready_for"] = []
    return result


def write_fleet(tree: str, hosts: int, base: dict | None = None) -> int:
    """N results under ``tree``; their total size in bytes."""
    base = base or live_result()
    os.makedirs(tree, exist_ok=True)
    size = 0
    for i in range(hosts):
        text = json.dumps({"changed": False, **vary(base, i)})
        size += len(text)
        with open(os.path.join(tree, f"hv{i:05d}.example"), "w") as f:
            f.write(text)
    return size
