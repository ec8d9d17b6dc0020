"""Validation of the ksm section: fixed knobs, or ``policy: pressure`` that decides run itself.

``ksm: {policy: pressure, threshold: 20%, hysteresis: 6.25%, pages_to_scan: {min: 64, max: 1250}}``
replaces a fixed ``run`` (tune.ksm_decide says how it decides). The policy owns run and
pages_to_scan, so a fixed value of either beside it is bad input, as is the advisor's
scan-time mode (which owns pages_to_scan in the kernel); the other knobs stay fixed.
"""

from __future__ import annotations

import re

from kvmtune.profile.shapes import _int, _kind, expect_mapping, unknown_key
from kvmtune.profile.source import Node

POLICIES = ("pressure",)
POLICY_KEYS = ("policy", "threshold", "hysteresis")
PAGES_KEYS = ("min", "max")
DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def ksm_policy(node: Node):
    """(profile.model.Policy or None, the keys it took out of the section)."""
    from kvmtune.profile.model import DEFAULT_HYSTERESIS, DEFAULT_PAGES, DEFAULT_THRESHOLD, Policy

    spec = expect_mapping(node, "knobs to values")
    if "policy" not in spec:
        for key in ("threshold", "hysteresis"):
            if key in spec:
                raise spec[key].key_error(f"ksm.{key} belongs to a policy: add policy: pressure")
        if "pages_to_scan" in spec and spec["pages_to_scan"].is_mapping:
            raise spec["pages_to_scan"].error("pages_to_scan: {min, max} belongs to a policy: add policy: "
                                              "pressure, or give one number")
        return None, ()
    kind = spec["policy"]
    if kind.value not in POLICIES:
        shown = repr(kind.value) if isinstance(kind.value, str) else _kind(kind)
        raise kind.error(f"unknown policy {shown}; expected one of: {', '.join(POLICIES)}")
    if "run" in spec:
        raise spec["run"].key_error("run and policy: pressure exclude each other: the policy decides run "
                                    "(remove run, or the policy)")
    if spec.get("advisor_mode") is not None and spec["advisor_mode"].value == "scan-time":
        raise spec["advisor_mode"].error("scan-time owns pages_to_scan, and so does policy: pressure: keep one")
    threshold = _percent(spec["threshold"], 0, 100) if "threshold" in spec else DEFAULT_THRESHOLD
    hysteresis = _percent(spec["hysteresis"], 0, 100) if "hysteresis" in spec else DEFAULT_HYSTERESIS
    if threshold + hysteresis > 100:
        raise spec["hysteresis"].error(f"threshold + hysteresis is {threshold + hysteresis:g}%, more than all of RAM")
    low, high = DEFAULT_PAGES
    if "pages_to_scan" in spec:
        pages = spec["pages_to_scan"]
        if not pages.is_mapping:
            raise pages.error("with policy: pressure, pages_to_scan is its bounds {min: 64, max: 1250}; "
                              "the policy sets the number")
        for key in pages.value:
            if key not in PAGES_KEYS:
                raise unknown_key(pages, key, PAGES_KEYS)
        low = _int(pages.value["min"], 1, 1 << 31) if "min" in pages.value else low
        high = _int(pages.value["max"], 1, 1 << 31) if "max" in pages.value else high
        if low > high:
            raise pages.error(f"min {low} is above max {high}")
    return Policy(threshold, hysteresis, low, high, kind), (*POLICY_KEYS, "pages_to_scan")


def _percent(node: Node, low: float, high: float) -> float:
    text = node.value.strip() if isinstance(node.value, str) else ""
    if not text.endswith("%") or not DECIMAL.fullmatch(text[:-1]):  # float() takes "nan" and "1e1" too
        raise node.error(f"expected a percent of RAM such as 20%, got {_kind(node)}")
    value = float(text[:-1])
    if not low < value < high and not (value == 0 and node.path.endswith("hysteresis")):
        raise node.error(f"{text} is out of range (above {low:g}%, below {high:g}%)")
    return value
