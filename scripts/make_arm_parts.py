"""Make kvmtune/data/arm_parts.json from a TSV of the facts in util-linux's
sys-utils/lscpu-arm.c (implementer and part ids with the names lscpu prints).

Usage: python scripts/make_arm_parts.py arm-parts.tsv > kvmtune/data/arm_parts.json
"""

import json
import sys


def main(path: str) -> None:
    implementers: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if not line.startswith("#")]
    for line in lines[1:]:
        imp, vendor, part, name = (line.split("\t") + ["", ""])[:4]
        entry = implementers.setdefault(imp, {"vendor": vendor, "parts": {}})
        if part:
            entry["parts"][part] = name
    out = {"source": "util-linux sys-utils/lscpu-arm.c at 4b53cfd3 (ids and names only)",
           "implementers": implementers}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
