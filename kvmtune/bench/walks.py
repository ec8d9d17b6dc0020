"""The memory and native sections: first touch, the chain laid out, paired shuffled rounds."""

from __future__ import annotations

import math
import random
import statistics
import time

from kvmtune.bench.hostmem import BACKINGS, Mapping
from kvmtune.bench.chain import Chain
from kvmtune.bench.guest import cpu_seconds
from kvmtune.bench.host_info import GUEST_PAGES
from kvmtune.bench.stats import TARGET, bootstrap_ci, converged, cv, summary, verdict

HIGH_CV = 0.15  # run-to-run spread worth a warning
MAX_ROUNDS = 200
FLOOR = 3  # rounds run even past the budget: fewer give no interval worth showing
CHECK_RESAMPLES = 500  # enough to tell "still wide" after each round; the reported interval takes more


def measure_walks(settings, result: dict, mappings: list[Mapping], skips: dict, vm, native,
            progress) -> None:
    by_kind = {m.kind: m for m in mappings}
    chain = Chain(settings.size, settings.seed)
    touch: dict[tuple[str, str], float] = {}
    pages = settings.size // 4096
    for i, mapping in enumerate(mappings):
        progress(f"first touch and layout: {mapping.kind}", i, len(mappings))
        if vm is not None:
            touch[mapping.kind, "2M"] = vm.call("touch", pages, vm.base(mapping.kind, "2M"))
        words = mapping.view()
        try:
            chain.write(words)
        finally:
            words.release()
        if vm is not None:
            # Shadow or EPT entries for the 4K mapping are built on the guest's first touch too.
            touch[mapping.kind, "4K"] = vm.call("touch", pages, vm.base(mapping.kind, "4K"))
            _cross_check(vm, native, mapping, chain)
    items = []
    if vm is not None:
        items += [("guest", m.kind, gp) for m in mappings for gp in GUEST_PAGES]
    if native is not None:
        items += [("native", m.kind, None) for m in mappings]
    times: dict[tuple, list[float]] = {item: [] for item in items}
    shuffle = random.Random(settings.seed)
    label = f"random walk over {settings.size >> 20} MiB"
    rounds = 0
    while True:
        order = list(items)
        shuffle.shuffle(order)
        for item in order:
            progress(label, min(time.monotonic(), settings.deadline) - settings.started,
                     settings.deadline - settings.started)
            where, kind, guest_page = item
            if where == "guest":
                elapsed = vm.call("chase", settings.accesses, vm.base(kind, guest_page), chain.start)
            else:
                began = cpu_seconds()
                native.chase(by_kind[kind].address, chain.start, settings.accesses)
                elapsed = cpu_seconds() - began
            times[item].append(elapsed / settings.accesses)
        rounds += 1
        # Adaptive rounds: at least the minimum, then on until every ratio's interval is narrow
        # enough, the time budget is spent, or MAX_ROUNDS.
        spent = time.monotonic() >= settings.deadline
        if rounds >= MAX_ROUNDS or (spent and rounds >= FLOOR) or (
                rounds >= settings.rounds and (spent or not _open_ratios(times, settings.seed, CHECK_RESAMPLES))):
            break
    result["rounds_run"] = rounds
    if vm is not None:
        for kind in BACKINGS:
            for gp in GUEST_PAGES:
                result["memory"].append(_row(("guest", kind, gp), kind, times, skips[kind],
                                             touch.get((kind, gp)), gp, settings.seed))
    if native is not None:
        for kind in BACKINGS:
            result["native"].append(_row(("native", kind, None), kind, times, skips[kind], None, None,
                                         settings.seed))
        _overhead(result)
    result["not_converged"] = [f"{r['backing']}/{r.get('guest_page', 'native')}"
                               for r in result["memory"] + result["native"]
                               if r["backing"] != "4k" and r["ratio_vs_4k"] is not None
                               and not converged(r["ratio_vs_4k"], r["ratio_vs_4k_ci"])]
    if result["not_converged"]:
        result["warnings"].append(f"after {rounds} rounds these ratios' intervals are still wider than "
                                  f"+-{TARGET:.0%}: {', '.join(result['not_converged'])}")
    _spread_warnings(result)


def _paired(times: dict, item: tuple) -> list[float]:
    """Each round's time over the 4K baseline's in the same round (the same place, guest page)."""
    baseline = times.get(item[:1] + ("4k",) + item[2:])
    return [v / b for v, b in zip(times[item], baseline)] if baseline and item[1] != "4k" else []


def _open_ratios(times: dict, seed: int, resamples: int) -> list[tuple]:
    """The items whose ratio's interval is still wider than the target."""
    open_ = []
    for item in times:
        ratios = _paired(times, item)
        if ratios and not converged(statistics.median(ratios), bootstrap_ci(ratios, seed, resamples)):
            open_.append(item)
    return open_


def _row(item: tuple, kind: str, times: dict, skipped: str | None, first_touch: float | None,
         guest_page: str | None, seed: int) -> dict:
    row = {"backing": kind}
    if guest_page:
        row["guest_page"] = guest_page
    values = times.get(item)
    if skipped or not values:
        row.update(ns_per_access=None, cv=None, ratio_vs_4k=None, ratio_range=None, ratio_vs_4k_ci=None,
                   verdict=None, skipped=skipped or "not run")
        if guest_page:
            row["first_touch_ms"] = None
        return row
    ratios = _paired(times, item) if kind != "4k" else [1.0] * len(values)
    interval = bootstrap_ci(ratios, seed) if kind != "4k" else None
    if interval:  # rounded outwards, so it still holds the rounded ratio; the verdict reads what is shown
        interval = (math.floor(interval[0] * 1000) / 1000, math.ceil(interval[1] * 1000) / 1000)
    point = statistics.median(ratios) if ratios else None
    row.update(ns_per_access=summary(values, 1e9), cv=cv(values),
               ratio_vs_4k=round(point, 3) if point is not None else None,
               ratio_range=[round(min(ratios), 3), round(max(ratios), 3)] if ratios else None,
               ratio_vs_4k_ci=list(interval) if interval else None,
               verdict=verdict(interval, len(ratios)) if kind != "4k" else None, skipped=None)
    if guest_page:
        row["first_touch_ms"] = round(first_touch * 1000, 1) if first_touch is not None else None
    return row


def _overhead(result: dict) -> None:
    """Guest (2M guest pages) over native, per backing: what virtualization costs a memory walk."""
    guest = {r["backing"]: r for r in result["memory"] if r.get("guest_page") == "2M"}
    for row in result["native"]:
        other = guest.get(row["backing"])
        if row["ns_per_access"] and other and other["ns_per_access"]:
            row["guest_vs_native"] = round(other["ns_per_access"]["median"] / row["ns_per_access"]["median"], 3)
        else:
            row["guest_vs_native"] = None


def _spread_warnings(result: dict) -> None:
    """One warning naming the noisy rows: the paired ratios are steadier than the times."""
    noisy = [f"{row['backing']}/{row.get('guest_page', 'native')} {row['cv']:.0%}"
             for row in result["memory"] + result["native"] if row["cv"] and row["cv"] > HIGH_CV]
    if noisy:
        result["warnings"].append(f"run-to-run spread is high (coefficient of variation above {HIGH_CV:.0%}: "
                                  f"{', '.join(noisy)}); the ratios, taken in the same round, are steadier "
                                  "than the times; run again on a quieter host for absolute figures")


def _cross_check(vm, native, mapping: Mapping, chain: Chain) -> None:
    """The guest and the host walk the same memory: their first steps must agree."""
    count = min(chain.length, 4096)
    vm.call("chase", count, vm.base(mapping.kind, "2M"), chain.start)
    guest = vm.answers()
    if native is not None and native.chase(mapping.address, chain.start, count) != guest:
        raise RuntimeError(f"the guest read different memory than the host for {mapping.kind}")
