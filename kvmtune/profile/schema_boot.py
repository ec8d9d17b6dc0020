"""Validation of the boot section: kernel arguments that quiet isolated CPUs, each a named key.

Only the arguments tuned's real-time profiles set (redhat-performance/tuned, profiles/
network-latency, realtime, cpu-partitioning and realtime-virtual-host, tuned.conf each), plus
KVM's nx_huge_pages and the split-lock policy; each with the values the kernel documents
(Documentation/admin-guide/kernel-parameters.txt). A key is the argument's own name, so the
profile reads as the command line it makes. Whether the host suits one (an invariant TSC for
tsc=reliable, an Intel CPU for intel_pstate=) is judged by the planner (kvmtune.tune.boot_args).
"""

from __future__ import annotations

import re

from kvmtune.profile.shapes import _kind, expect_mapping, unknown_key
from kvmtune.profile.source import Node

FLAG = True  # a bare argument (``nosoftlockup``): true writes it, false leaves it out
RATELIMIT = re.compile(r"ratelimit:[1-9][0-9]{0,3}")  # split_lock_detect=ratelimit:N, N in 1..1000
# argument -> the values it takes (FLAG: a bare word)
BOOT_ARGS = {
    "nosoftlockup": FLAG,
    "nmi_watchdog": ("0", "1", "panic", "nopanic"),
    "tsc": ("reliable", "nowatchdog", "noirqtime", "unstable"),
    "skew_tick": ("0", "1"),
    "intel_pstate": ("disable", "passive", "active", "no_hwp", "hwp_only"),
    "kvm.nx_huge_pages": ("never", "off", "auto", "force"),
    "split_lock_detect": ("off", "warn", "fatal", "ratelimit:N"),
}


def boot_section(node: Node) -> dict:
    """{argument: (value text, Node)} (True for a bare flag that is on); a flag set false is left out."""
    out = {}
    for key, child in expect_mapping(node, "kernel arguments to values").items():
        allowed = BOOT_ARGS.get(key)
        if allowed is None:
            raise unknown_key(node, key, BOOT_ARGS)
        value = child.value
        if allowed is FLAG:
            if not isinstance(value, bool):
                raise child.error(f"expected true or false (a bare argument), got {_kind(child)}")
            if value:
                out[key] = (True, child)
            continue
        text = ("on" if value else "off") if isinstance(value, bool) else str(value) if isinstance(value, (int, str)) else None
        if text is None or not (text in allowed or (key == "split_lock_detect" and RATELIMIT.fullmatch(text))):
            raise child.error(f"expected one of {', '.join(allowed)}, got {_kind(child)}")
        out[key] = (text, child)
    return out


def argument(name: str, value) -> str:
    """The command-line word: ``nosoftlockup``, ``skew_tick=1``."""
    return name if value is True else f"{name}={value}"
