"""The shipped tables (kvmtune/data: made by scripts/make_cpu_table.py from libvirt's cpu_map, and
by scripts/make_qemu_cpu_table.py from QEMU's target/i386/cpu.c)."""

from __future__ import annotations

from kvmtune.shipped import load_data as load  # one reader of kvmtune/data for the whole package

# Judgements that never make a model unusable: KVM provides them on any host (kvm), only
# nested guests need them (nested), or QEMU turns them off under KVM anyway (qemu_off).
NOT_REQUIRED = ("nested", "qemu_off")


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
