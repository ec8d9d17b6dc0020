"""The shipped tables (kvmtune/data: made by scripts/make_cpu_table.py from libvirt's cpu_map, and
by scripts/make_qemu_cpu_table.py from QEMU's target/i386/cpu.c)."""

from __future__ import annotations

import os

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
# Judgements that never make a model unusable: KVM provides them on any host (kvm), only
# nested guests need them (nested), or QEMU turns them off under KVM anyway (qemu_off).
NOT_REQUIRED = ("nested", "qemu_off")


_LOADED: dict[str, dict] = {}  # read once per process (not functools.lru_cache: 3 ms to import)


def load(name: str) -> dict:
    if name not in _LOADED:
        from kvmtune.fastjson import loads

        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            _LOADED[name] = loads(f.read())
    return _LOADED[name]


def features() -> dict[str, dict]:
    return load("cpu_features.json")["features"]


def vendors() -> dict[str, str]:
    """libvirt vendor name -> CPUID vendor string (Intel -> GenuineIntel)."""
    return load("cpu_features.json")["vendors"]


def models() -> list[dict]:
    """Every model in libvirt's index order (oldest first within a vendor)."""
    return load("cpu_models.json")["models"]


def source() -> dict:
    return load("cpu_models.json")["source"]


def required(model: dict) -> list[str]:
    """The features a model needs from the host (KVM-provided ones are checked as present)."""
    table = features()
    return [f for f in model["features"] if table.get(f, {}).get("judge") not in NOT_REQUIRED]
