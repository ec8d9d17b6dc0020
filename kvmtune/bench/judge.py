"""What a bench result means, in one sentence, and how two results differ. Pure: dicts in, dicts out."""

from __future__ import annotations

HUGE = ("hugetlb-2M", "thp", "hugetlb-1G")  # the order to name them in when they measure the same
NOTHING = 0.05  # a ratio this close to 1 (or to another) is no difference on a shared host


def conclusion(result: dict) -> str:
    if result.get("emulated"):
        return ("the guest ran emulated: these figures describe KVM's instruction emulator, not this host's "
                "guests")
    rows = {(r["backing"], r["guest_page"]): r for r in result["memory"] if r.get("ratio_vs_4k") is not None}
    size = f"{result['settings']['size'] >> 20} MiB"
    huge = [k for k in HUGE if (k, "2M") in rows]
    if ("4k", "2M") not in rows or not huge:
        reason = result["skipped"].get("memory") or next(
            (r["skipped"] for r in result["memory"] if r["backing"] != "4k" and r["skipped"]), None)
        return "no huge-page backing was measured" + (f" ({reason})" if reason else "")
    lowest = min(rows[k, "2M"]["ratio_vs_4k"] for k in huge)
    best = next(k for k in huge if rows[k, "2M"]["ratio_vs_4k"] <= lowest + NOTHING / 2)
    gain = 1 - rows[best, "2M"]["ratio_vs_4k"]
    if gain < NOTHING:
        text = (f"huge pages make no measurable difference to this host's guests on a {size} random walk "
                f"({best}: {gain:+.0%})")
    else:
        text = (f"huge pages ({best}) cut the time of this host's guests' random memory accesses by {gain:.0%} "
                f"on a {size} walk (2M guest pages)")
    if ("hugetlb-1G", "2M") in rows and ("hugetlb-2M", "2M") in rows:
        extra = rows["hugetlb-2M", "2M"]["ratio_vs_4k"] - rows["hugetlb-1G", "2M"]["ratio_vs_4k"]
        if extra < NOTHING:
            text += "; 1G pages add nothing over 2M here because guests map 2M at most"
        else:
            text += f"; 1G pages add {extra:.0%} over 2M"
    if (best, "4K") in rows and gain >= NOTHING:
        gain_4k = 1 - rows[best, "4K"]["ratio_vs_4k"]
        if gain_4k < gain / 2:
            text += (f"; with 4K guest pages the gain is {max(gain_4k, 0):.0%}: guests need huge pages of "
                     "their own (THP or hugepages in the guest kernel)")
    return text


def figures(result: dict) -> dict[str, float]:
    """Every comparable number of a result, by a stable name."""
    out = {}
    for row in result.get("memory", []):
        if row.get("ns_per_access"):
            key = f"memory {row['backing']} guest {row['guest_page']}"
            out[f"{key} ns/access"] = row["ns_per_access"]["median"]
            if row.get("ratio_vs_4k") is not None and row["backing"] != "4k":
                out[f"{key} vs 4k"] = row["ratio_vs_4k"]
            if row.get("first_touch_ms") is not None:
                out[f"{key} first touch ms"] = row["first_touch_ms"]
    for row in result.get("native", []):
        if row.get("ns_per_access"):
            out[f"native {row['backing']} ns/access"] = row["ns_per_access"]["median"]
    for name, value in (result.get("exits") or {}).items():
        if name.endswith("_us") and value is not None:
            out[f"exit {name[:-3]} us"] = value
    ksm = result.get("ksm") or {}
    if ksm.get("merge_s") is not None:
        out["ksm merge s"] = ksm["merge_s"]
    return out


def compare(before: dict, after: dict) -> dict:
    """Each figure before and after, and its change as a fraction (lower is better for all)."""
    old, new = figures(before), figures(after)
    rows = []
    for name in list(old) + [n for n in new if n not in old]:
        a, b = old.get(name), new.get(name)
        change = round(b / a - 1, 4) if a and b is not None else None
        rows.append({"figure": name, "before": a, "after": b, "change": change})
    host_changes = {}
    for key in ("cpu_model", "kernel", "kvm_flavour", "thp", "pools"):
        if before["host"].get(key) != after["host"].get(key):
            host_changes[key] = {"before": before["host"].get(key), "after": after["host"].get(key)}
    settings = {k: (before["settings"].get(k), after["settings"].get(k))
                for k in ("size", "rounds", "accesses") if before["settings"].get(k) != after["settings"].get(k)}
    return {"figures": rows, "host_changes": host_changes,
            "settings_differ": {k: {"before": v[0], "after": v[1]} for k, v in settings.items()},
            "conclusion_before": conclusion(before), "conclusion_after": conclusion(after)}
