"""``kvmtune migration``: the fleet's migration domains, what keeps each other host out of
them, the one-way moves, and the warnings. The partition itself is kvmtune.fleet.domains';
this module describes it (the JSON of issue #21, migration.schema.json)."""

from __future__ import annotations

from collections import Counter

from kvmtune.fleet.cpu import Models
from kvmtune.fleet.domains import partition, ppm, within
from kvmtune.fleet.hosts import FIELDS, read_loaded, unfit, version_text


ALONE = "alone: no other host shares its CPU vendor, its TSC band (or TSC scaling) and its QEMU series"


def migration(paths: list[str], guest=None) -> dict:
    from kvmtune.fleet.load import load_results, newest_per_host

    invalid, valid = [], []
    for item in load_results(paths, FIELDS, post=read_loaded):
        (valid if item.error is None else invalid).append(item)
    kept, duplicates = newest_per_host(valid)
    hosts = [item.result for item in kept if item.kind == "check"]
    out = judge_fleet(hosts, guest)
    # An unreadable result is a host outside every domain, with the reason.
    out["excluded"] += [{"host": item.path, "reasons": [item.error]} for item in invalid]
    notes = [f"{d['host']}: {len(d['left_out']) + 1} {d['kind']} results; the newest counts ({d['kept']})"
             for d in duplicates]
    skipped = sum(item.kind == "guests" for item in kept)
    if skipped:
        notes.append(f"{skipped} guests result{'s' if skipped > 1 else ''} left out: migration reads check results")
    out["warnings"] = notes + out["warnings"]
    return out


def judge_fleet(hosts: list, guest=None) -> dict:
    """hosts: FleetHost records (kvmtune.fleet.hosts); guest: a fleet.guest.Guest or None."""
    models = Models()
    excluded: dict[str, list[str]] = {}
    fit, unfit_for_guest = [], {}
    for h in hosts:
        why = unfit(h)
        if not why and not models.runs_any(h):
            why = ["runs no named CPU model that its QEMU has (see 'kvmtune cpu-models')"]
        if why:
            excluded[h.name] = why  # not judged against any domain
            continue
        guest_why = _guest_reasons(h, guest, models) if guest is not None else []
        if guest_why:
            unfit_for_guest[id(h)] = guest_why
        fit.append(h)
    groups = partition([h for h in fit if id(h) not in unfit_for_guest])
    warnings: list[str] = []
    domains = [_describe(g, k, models, guest, warnings) for k, g in enumerate(groups, 1)]
    members = {id(h) for g in groups for h in g["hosts"]}
    one_way = []
    for h in sorted(fit, key=lambda h: h.name):  # one_way in name order, whatever the files' order
        if id(h) in members:
            continue
        k, reasons = _nearest(h, groups, domains, models)
        guest_why = unfit_for_guest.get(id(h), [])
        # What the guest needs first, then what else keeps the host from the nearest domain.
        excluded[h.name] = list(dict.fromkeys(guest_why + reasons)) if k or not guest_why else guest_why
        if k and not guest_why and len(reasons) == 1 and reasons[0].endswith(": one-way only"):
            older = h.series < groups[k - 1]["series"]
            one_way.append({"from": h.name if older else f"domain {k}", "to": f"domain {k}" if older else h.name,
                            "reason": reasons[0]})
    one_way += _domains_one_way(groups, domains, models)
    return {"domains": domains,
            "excluded": [{"host": name, "reasons": excluded[name]} for name in sorted(excluded)],
            "one_way": one_way, "warnings": warnings}


def _guest_reasons(h, guest, models: Models) -> list[str]:
    from kvmtune.fleet.guest import pages_short

    why = models.missing(h, guest.model)
    short = pages_short(guest, h.hugepages_free)
    return why + ([short] if short else [])


def _describe(group: dict, k: int, models: Models, guest, warnings: list) -> dict:
    hosts = group["hosts"]
    names = [h.name for h in hosts]
    if guest is not None:
        model, features = guest.model, models.extras(hosts, guest.model)
    else:
        from kvmtune.cpumodels.baseline import baseline

        base = baseline([(h.name, h.facts) for h in hosts])
        model, features = base["baseline"], base.get("extras") or []
        warnings += [f"domain {k}: {w}" for w in base["warnings"]]
        held = base.get("held_back")
        if held and held["hosts"]:
            who = ", ".join(f"{x['name']} (lacks {', '.join(x['missing'] or x['undecided'])})"
                            for x in held["hosts"][:3])
            more = f" and {len(held['hosts']) - 3} more" if len(held["hosts"]) > 3 else ""
            verb = "holds" if len(held["hosts"]) == 1 else "hold"
            warnings.append(f"domain {k}: {who}{more} {verb} the domain back from {held['model']}")
    pools: dict[str, dict[str, int]] = {}
    for h in hosts:
        for size, free in h.hugepages_free.items():
            pools.setdefault(size, {})[h.name] = free
    versions = [h.qemu for h in hosts]
    warnings += _differences(k, hosts)
    return {"hosts": names, "cpu_model": model, "features": features, "tsc_khz": group["tsc_khz"],
            "tsc_scaling": all(h.tsc_scaling for h in hosts),
            "qemu": {"min": version_text(min(versions)), "max": version_text(max(versions))},
            "hugepages_free": {size: pools[size] for size in sorted(pools, key=int)}}


def _differences(k: int, hosts: list) -> list[str]:
    """Microcode and mitigations that differ inside a domain: warnings, not exclusions (a
    guest moves, but what it is protected from may change on the way)."""
    out = []
    for what, value in (("microcode", lambda h: h.microcode), ("mitigations", lambda h: h.mitigations)):
        known = [h for h in hosts if value(h)]  # a result that does not say is no difference
        counts = Counter(value(h) for h in known)
        if len(counts) < 2:
            continue
        common = max(counts, key=lambda v: (counts[v], str(v)))
        odd = sorted(h.name for h in known if value(h) != common)
        if what == "microcode":
            detail = ", ".join(f"{v} on {n}" for v, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
        else:
            keys = sorted({key for h in known if value(h) != common for key in set(value(h)) ^ set(common)})
            detail = ", ".join(dict.fromkeys(name for name, _ in keys))
        listed = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
        verb = "differs" if what == "microcode" else "differ"
        out.append(f"domain {k}: {what} {verb} ({detail}): {listed} unlike the other {len(known) - len(odd)}")
    return out


def _reasons(h, group: dict, domain: dict, models: Models) -> list[str]:
    """What keeps ``h`` out of one domain, in the words of issue #21."""
    why = []
    if h.vendor != group["vendor"]:
        return [f"CPU vendor {h.vendor}, the domain's is {group['vendor']}: vendors never share a domain"]
    khz = group["tsc_khz"]
    if not h.tsc_scaling and not within(h.tsc_khz, khz):
        if khz is None:
            why.append("no TSC scaling, and the domain's frequency is not known (its members all scale)")
        else:
            why.append(f"tsc {h.tsc_khz / 1000:.1f} MHz, {ppm(h.tsc_khz, khz)} ppm from the domain's "
                       f"{khz / 1000:.1f} MHz, no TSC scaling")
    if domain["cpu_model"]:
        why += models.missing(h, domain["cpu_model"])
    series, theirs = h.series, group["series"]
    n = len(group["hosts"])
    if series != theirs:
        older = "older" if series < theirs else "newer"
        why.append(f"QEMU {version_text(series)} is {older} than {version_text(theirs)} on {n} members: one-way only")
    return why


def _nearest(h, groups: list, domains: list, models: Models) -> tuple[int | None, list[str]]:
    """The domain that ``h`` misses by the fewest reasons (one of its vendor first; the first
    of those on a tie), and the reasons."""
    best = None
    for k, (g, d) in enumerate(zip(groups, domains), 1):
        reasons = _reasons(h, g, d, models)
        rank = (g["vendor"] != h.vendor, len(reasons), k)
        if best is None or rank < best[0]:
            best = (rank, k, reasons)
    if best is None or not best[2]:  # no domain at all; or (never seen) one it fits yet is not in
        return None, [ALONE]
    return best[1], best[2]


def _domains_one_way(groups: list, domains: list, models: Models) -> list[dict]:
    """A domain whose QEMU series is older than another's moves its guests there, when that
    one's members run the guests' TSC frequency and CPU model; never back."""
    out = []
    for a, (ga, da) in enumerate(zip(groups, domains), 1):
        for b, (gb, db) in enumerate(zip(groups, domains), 1):
            if ga["vendor"] != gb["vendor"] or not ga["series"] < gb["series"]:
                continue
            if all((h.tsc_scaling or within(h.tsc_khz, ga["tsc_khz"])) and
                   not (da["cpu_model"] and models.missing(h, da["cpu_model"])) for h in gb["hosts"]):
                out.append({"from": f"domain {a}", "to": f"domain {b}",
                            "reason": f"QEMU {version_text(ga['series'])} is older than "
                                      f"{version_text(gb['series'])} on {len(gb['hosts'])} members: one-way only"})
    return out
