"""Medians, ranges and spread of per-round figures."""

from __future__ import annotations

import statistics


def summary(values: list[float], scale: float) -> dict:
    return {"median": round(statistics.median(values) * scale, 2), "min": round(min(values) * scale, 2),
            "max": round(max(values) * scale, 2)}


def cv(values: list[float]) -> float:
    return round(statistics.pstdev(values) / statistics.mean(values), 3) if len(values) > 1 else 0.0
