"""What a bench result means, in one sentence, and how two results differ. Pure: dicts in, dicts out."""

from __future__ import annotations

HUGE = ("hugetlb-2M", "thp", "hugetlb-1G")  # the order to name them in when they measure the same
NOTHING = 0.05  # without intervals (older results), a ratio this close to 1 (or to another) is no difference


def conclusion(result: dict) -> str:
    """Only what the intervals support: a gain where the interval excludes 1, else "no measurable
    difference at this noise level"."""
    if result.get("noise") and not {"memory", "native"} & set(result["settings"].get("sections", ["memory"])):
        return result["noise"]["conclusion"]  # a noise-only run
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
    shown = [k for k in huge if verdict_of(rows[k, "2M"]) == "faster"] or huge
    lowest = min(rows[k, "2M"]["ratio_vs_4k"] for k in shown)
    best = next(k for k in shown if rows[k, "2M"]["ratio_vs_4k"] <= lowest + NOTHING / 2)
    row = rows[best, "2M"]
    said = verdict_of(row)
    if said == "faster":
        text = (f"huge pages ({best}) cut the time of this host's guests' random memory accesses by "
                f"{1 - row['ratio_vs_4k']:.0%} ({_ratio(row)}) on a {size} walk (2M guest pages)")
    elif said == "slower":
        text = (f"huge pages ({best}) made this host's guests' random memory accesses "
                f"{row['ratio_vs_4k'] - 1:.0%} slower ({_ratio(row)}) on a {size} walk (2M guest pages)")
    else:
        text = (f"no measurable difference at this noise level between huge pages and 4K pages for this "
                f"host's guests on a {size} random walk ({best}: {_ratio(row)})")
        if result.get("disturbed"):
            text += "; the host was disturbed during the run"
        return text
    one, two = rows.get(("hugetlb-1G", "2M")), rows.get(("hugetlb-2M", "2M"))
    if said == "faster" and one and two and verdict_of(one) == "faster":
        if _overlap(one, two):
            text += "; 1G pages add nothing measurable over 2M here because guests map 2M at most"
        else:
            text += f"; 1G pages add {two['ratio_vs_4k'] - one['ratio_vs_4k']:.0%} over 2M"
    small = rows.get((best, "4K"))
    if said == "faster" and small:
        gain, gain_4k = 1 - row["ratio_vs_4k"], 1 - small["ratio_vs_4k"]
        if verdict_of(small) != "faster":
            text += ("; with 4K guest pages no measurable gain: guests need huge pages of their own (THP or "
                     "hugepages in the guest kernel)")
        elif gain_4k < gain / 2:
            text += (f"; with 4K guest pages the gain is {gain_4k:.0%}: guests need huge pages of their own "
                     "(THP or hugepages in the guest kernel)")
    return text


def verdict_of(row: dict) -> str:
    """The row's verdict; a result from before intervals were kept has none, and its point ratio is
    judged with the margin it was judged by then."""
    if "verdict" in row:
        return row["verdict"] or "not-measurable"
    ratio = row["ratio_vs_4k"]
    return "faster" if ratio <= 1 - NOTHING else "slower" if ratio >= 1 + NOTHING else "not-measurable"


def _ratio(row: dict) -> str:
    ci = row.get("ratio_vs_4k_ci")
    return f"ratio {row['ratio_vs_4k']:.2f}" + (f", 95 % interval {ci[0]:.2f}-{ci[1]:.2f}" if ci else "")


def _overlap(a: dict, b: dict) -> bool:
    ca, cb = a.get("ratio_vs_4k_ci"), b.get("ratio_vs_4k_ci")
    if not ca or not cb:
        return abs(a["ratio_vs_4k"] - b["ratio_vs_4k"]) < NOTHING
    return ca[0] <= cb[1] and cb[0] <= ca[1]


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
        elif name.endswith("_ms") and value is not None:  # a fresh VM's creation, first vCPU, first run
            out[f"{name[:-3].replace('_', ' ')} ms"] = value
    ksm = result.get("ksm") or {}
    if ksm.get("merge_s") is not None:
        out["ksm merge s"] = ksm["merge_s"]
    from kvmtune.bench.noise_judge import figures as noise_figures

    out.update(noise_figures(result.get("noise")))
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
            "conclusion_before": conclusion(before), "conclusion_after": conclusion(after),
            "noise_before": (before.get("noise") or {}).get("conclusion"),
            "noise_after": (after.get("noise") or {}).get("conclusion")}
