#!/usr/bin/env python3
"""Regenerate kvmtune's CPU model tables from a libvirt cpu_map directory.

    python scripts/make_cpu_table.py /usr/share/libvirt/cpu_map [--judgement FILE] [--out kvmtune/data]

Reads, from the cpu_map directory, index.xml (model order and groups),
x86_vendors.xml, x86_features.xml (each feature's CPUID leaf/subleaf/register/bit
or MSR index/bit) and the x86_*.xml model files, resolving ``<model name=.../>``
inheritance and dropping ``removed='yes'`` features as libvirt's cpu_x86.c does.
The judgement file says how Linux's /proc/cpuinfo shows each feature (the
fallback when KVM cannot be asked); a feature it does not know is marked
undecidable, so a model needing it is never called usable from flags alone.

Writes cpu_features.json and cpu_models.json (libvirt data: LGPL-2.1-or-later).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REGS = ("eax", "ebx", "ecx", "edx")


def bit_of(mask: str) -> int:
    value = int(mask, 16)
    if value == 0 or value & (value - 1):
        raise ValueError(f"expected a single-bit mask, got {mask}")
    return value.bit_length() - 1


def parse_features(path: str) -> dict[str, dict]:
    out = {}
    for feat in ET.parse(path).getroot().iter("feature"):
        name = feat.get("name")
        cpuid, msr = feat.find("cpuid"), feat.find("msr")
        qemu = next((a.get("name") for a in feat.findall("alias") if a.get("source") == "qemu"), None)
        if cpuid is not None:
            reg = next(r for r in REGS if cpuid.get(r) and int(cpuid.get(r), 16))
            out[name] = {"cpuid": [f"0x{int(cpuid.get('eax_in'), 16):08x}", int(cpuid.get("ecx_in") or "0", 16),
                                   reg, bit_of(cpuid.get(reg))]}
        elif msr is not None:
            eax, edx = int(msr.get("eax") or "0", 16), int(msr.get("edx") or "0", 16)
            bit = bit_of(hex(eax)) if eax else 32 + bit_of(hex(edx))
            out[name] = {"msr": [f"0x{int(msr.get('index'), 16):x}", bit]}
        if qemu and name in out:
            out[name]["qemu"] = qemu  # QEMU's spelling, for -cpu strings
    return out


def model_files(cpu_map: str) -> list[tuple[str, str]]:
    """(group, file) for every x86 model, in index.xml order."""
    root = ET.parse(os.path.join(cpu_map, "index.xml")).getroot()
    arch = next(a for a in root.iter("arch") if a.get("name") == "x86")
    return [(group.get("name"), inc.get("filename")) for group in arch.iter("group") for inc in group.iter("include")]


def parse_models(cpu_map: str) -> list[dict]:
    resolved: dict[str, dict] = {}
    order = []
    for group, filename in model_files(cpu_map):
        model = ET.parse(os.path.join(cpu_map, filename)).getroot().find("model")
        name = model.get("name")
        parent = model.find("model")
        base = resolved[parent.get("name")] if parent is not None else {"vendor": None, "features": set()}
        features = set(base["features"])
        for feat in model.findall("feature"):
            if feat.get("removed") == "yes":
                features.discard(feat.get("name"))
            else:
                features.add(feat.get("name"))
        vendor = model.find("vendor")
        version_of = name.rsplit("-v", 1)[0] if name.rsplit("-v", 1)[-1].isdigit() and "-v" in name else None
        resolved[name] = {"name": name, "vendor": vendor.get("name") if vendor is not None else base["vendor"],
                          "group": group, "version_of": version_of, "inherits": parent.get("name") if parent is not None else None,
                          "features": features}
        order.append(name)
    return [{**resolved[n], "features": sorted(resolved[n]["features"])} for n in order]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cpu_map", help="libvirt's cpu_map directory")
    parser.add_argument("--judgement", default=os.path.join(HERE, "data", "linux-feature-judgement.json"))
    parser.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "kvmtune", "data"))
    parser.add_argument("--release", default="v12.8.0", help="libvirt release the cpu_map comes from")
    args = parser.parse_args()

    bits = parse_features(os.path.join(args.cpu_map, "x86_features.xml"))
    with open(args.judgement) as f:
        judgement = json.load(f)["features"]
    vendors = {v.get("name"): v.get("string")
               for v in ET.parse(os.path.join(args.cpu_map, "x86_vendors.xml")).getroot().iter("vendor")}
    features = {}
    unknown = []
    for name, where in sorted(bits.items()):
        j = judgement.get(name)
        if j is None:
            unknown.append(name)
            j = {"decided_by": "undecidable", "note": "not in the judgement file"}
        entry = dict(where, judge=j["decided_by"])
        if j.get("requires_flags"):
            entry["flags"] = j["requires_flags"]
        if j.get("forbids_bugs"):
            entry["bugs"] = j["forbids_bugs"]
        features[name] = entry
    models = parse_models(args.cpu_map)
    source = {"libvirt": {"release": args.release, "path": "src/cpu_map", "license": "LGPL-2.1-or-later"}}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cpu_features.json"), "w") as f:
        json.dump({"schema": 1, "source": source, "vendors": vendors, "features": features}, f,
                  separators=(",", ":"), sort_keys=True)
    with open(os.path.join(args.out, "cpu_models.json"), "w") as f:
        json.dump({"schema": 1, "source": source, "models": models}, f, separators=(",", ":"))
    print(f"{len(models)} models, {len(features)} features -> {args.out}")
    if unknown:
        print(f"warning: no Linux judgement for {len(unknown)} features (undecidable from cpuinfo): "
              f"{', '.join(unknown)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
