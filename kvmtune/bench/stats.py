"""Medians, ranges and spread of per-round figures; intervals and verdicts for the paired ratios.

A ratio is the median of per-round paired ratios (each round walks a backing and the 4K
baseline moments apart). Its interval is a percentile bootstrap of that median over the
rounds: resample the rounds with replacement, take the median each time, keep the middle
95 %. The bootstrap assumes nothing about the shape of the noise, which on a host that is
itself a guest is lopsided (steal time only ever makes a walk slower).
"""

from __future__ import annotations

import math
import random
import statistics

CONFIDENCE = 0.95
RESAMPLES = 2000
TARGET = 0.05  # an interval within +-5 % of its ratio has converged
VERDICTS = ("faster", "slower", "not-measurable")
MIN_VERDICT_ROUNDS = 6  # the fewest rounds whose order statistics give a 95 % interval of the median


def summary(values: list[float], scale: float) -> dict:
    return {"median": round(statistics.median(values) * scale, 2), "min": round(min(values) * scale, 2),
            "max": round(max(values) * scale, 2)}


def cv(values: list[float]) -> float:
    return round(statistics.pstdev(values) / statistics.mean(values), 3) if len(values) > 1 else 0.0


def bootstrap_ci(values: list[float], seed: int = 1, resamples: int = RESAMPLES) -> tuple[float, float] | None:
    """The interval of the median of ``values``; None with fewer than two (one round says nothing
    about its own noise)."""
    if len(values) < 2:
        return None
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - CONFIDENCE) / 2
    low, high = medians[int(tail * resamples)], medians[min(resamples - 1, int((1 - tail) * resamples))]
    point = statistics.median(values)
    ordered = sorted(values)
    k = order_rank(n)
    # With few rounds the percentile bootstrap is too sure of itself (five rounds all on one side
    # of 1 happen by chance one time in sixteen); the interval is widened to hold the median's
    # distribution-free one (order statistics, binomial coverage) where one exists. It must also
    # hold the ratio reported beside it, which a lopsided bootstrap can leave just outside.
    if k:
        low, high = min(low, ordered[k - 1]), max(high, ordered[n - k])
    else:  # too few rounds for a 95 % interval: the whole range, and no verdict (see verdict)
        low, high = ordered[0], ordered[-1]
    return min(low, point), max(high, point)


def order_rank(n: int) -> int:
    """The largest k with P(Binomial(n, 1/2) < k) <= 2.5 %: [x(k), x(n+1-k)] then holds the median
    with at least 95 % probability whatever the noise; 0 when n is too small for any (n < 6)."""
    k, below = 0, 0.0
    while True:
        below += math.comb(n, k) / 2 ** n  # P(fewer than k + 1 rounds below the median)
        if below > (1 - CONFIDENCE) / 2:
            return k
        k += 1


def verdict(interval: tuple[float, float] | None, rounds: int = MIN_VERDICT_ROUNDS) -> str:
    """faster or slower only where the interval excludes 1 (no effect), from enough rounds for an
    interval that holds whatever the noise's shape."""
    if interval is None or rounds < MIN_VERDICT_ROUNDS:
        return "not-measurable"
    if interval[1] < 1:
        return "faster"
    if interval[0] > 1:
        return "slower"
    return "not-measurable"


def converged(point: float, interval: tuple[float, float] | None) -> bool:
    """The interval lies within +-TARGET of the ratio."""
    return interval is not None and max(point - interval[0], interval[1] - point) <= TARGET * point
