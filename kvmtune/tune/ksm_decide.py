"""The KSM pressure policy's decision: a pure function of /proc/meminfo samples.

KSM costs CPU (ksmd) and copy-on-write faults, and merging across guests is a side channel
(Documentation/admin-guide/mm/ksm.rst), so the policy runs it only while the host is short
of memory, as ksmtuned, oVirt MoM (``ksm.rules``, ``ksm_free_percent 0.20``), KubeVirt
(virt-handler's KSM handler, kubevirt PR #10477) and Harvester (PR #2689) do:

- start when MemAvailable falls below ``threshold`` (default 20 % of MemTotal: ksmtuned's
  ``KSM_THRES_COEF=20``, MoM's ``ksm_free_percent``, KubeVirt's default);
- once running, stop only above threshold + ``hysteresis`` (default 1/16 of MemTotal, the
  band xu xin's linux-mm series "ksm: let ksmd auto-work with memory threshold" (2022) keeps
  so that ksmd does not ping-pong at the edge);
- ``pages_to_scan`` grows with the pressure, linearly from ``min`` at the threshold to
  ``max`` with no memory left (ksmtuned's and MoM's bounds ``KSM_NPAGES_MIN``/``MAX``,
  64 and 1250; they step by +300/-50 a minute, a linear map reaches the same bounds without
  keeping a counter between runs); in the hysteresis band it scans at ``min``.
- stopping writes ``run=0``: ksmd stops and keeps what it merged (``run=2`` would unmerge
  everything at once, which may need more memory than is free: the OOM warning of ksm.rst).

MemAvailable (Linux >= 3.14) is the kernel's estimate of what can be had without swapping;
without it, ksmtuned's MemFree + Buffers + Cached. This module reads nothing: the samples
come in, decisions go out, and the journal keeps the last one (``to_record``/``check_record``).
"""

from __future__ import annotations

# The policy is declared with the profile (its defaults are the profile's); decided here.
from kvmtune.profile.model import DEFAULT_HYSTERESIS, DEFAULT_PAGES, DEFAULT_THRESHOLD, Policy  # noqa: F401
from kvmtune.record import record


@record
class Decision:
    run: int  # 1: ksmd runs; 0: stopped, merged pages kept
    pages_to_scan: int | None  # None with run=0: left as it is
    available_kb: int
    total_kb: int
    start_kb: int  # below this, KSM starts
    stop_kb: int  # above this, KSM stops
    at: str = ""  # when it was decided (ISO 8601), set by whoever records it

    @property
    def reason(self) -> str:
        avail, pct = _mib(self.available_kb), 100 * self.available_kb / self.total_kb if self.total_kb else 0
        if self.run and self.available_kb < self.start_kb:
            return (f"MemAvailable {avail} ({pct:.0f}%) is below the threshold {_mib(self.start_kb)}: "
                    f"KSM on, pages_to_scan {self.pages_to_scan}")
        if self.run:
            return (f"MemAvailable {avail} ({pct:.0f}%) is above the threshold but not above "
                    f"{_mib(self.stop_kb)} (hysteresis): KSM stays on, pages_to_scan {self.pages_to_scan}")
        return f"MemAvailable {avail} ({pct:.0f}%) is not below the threshold {_mib(self.start_kb)}: KSM off"

    def same_action(self, other) -> bool:
        """Whether two decisions ask the kernel for the same thing (the numbers aside)."""
        return other is not None and (self.run, self.pages_to_scan) == (other.run, other.pages_to_scan)


def _mib(kb: int) -> str:
    return f"{kb / 1024:.0f} MiB" if kb < 10 << 20 else f"{kb / (1 << 20):.1f} GiB"


def available_kb(meminfo: dict) -> int | None:
    if "MemAvailable" in meminfo:
        return meminfo["MemAvailable"]
    parts = [meminfo.get(k) for k in ("MemFree", "Buffers", "Cached")]
    return None if None in parts else sum(parts)  # ksmtuned's measure, for kernels before 3.14


def decide(policy: Policy, meminfo: dict, running: bool) -> Decision:
    """The decision for one sample; ``running``: whether the last decision had KSM on (the
    hysteresis needs to know which side of the band it comes from). ValueError if the sample
    lacks MemTotal or every measure of free memory."""
    total, avail = meminfo.get("MemTotal"), available_kb(meminfo)
    if not total or avail is None:
        raise ValueError("/proc/meminfo has no MemTotal or MemAvailable")
    start = int(total * policy.threshold / 100)
    stop = start + int(total * policy.hysteresis / 100)
    if avail < start:
        pressure = (start - avail) / start  # 0 at the threshold, 1 with nothing available
        pages = policy.pages_min + round(pressure * (policy.pages_max - policy.pages_min))
        return Decision(1, pages, avail, total, start, stop)
    if running and avail <= stop:
        return Decision(1, policy.pages_min, avail, total, start, stop)
    return Decision(0, None, avail, total, start, stop)


def decide_series(policy: Policy, samples, running: bool = False) -> list[Decision]:
    """Decisions over successive samples, each one's hysteresis state from the one before."""
    out = []
    for sample in samples:
        out.append(decide(policy, sample, running))
        running = out[-1].run == 1
    return out


# -- the journal's record of the last decision (tune.journal keeps it; check reads it) ------

RECORD_INTS = ("run", "available_kb", "total_kb", "start_kb", "stop_kb")


def to_record(decision: Decision, policy: Policy) -> dict:
    return {**{k: getattr(decision, k) for k in RECORD_INTS}, "pages_to_scan": decision.pages_to_scan,
            "at": decision.at, "policy": {"threshold": policy.threshold, "hysteresis": policy.hysteresis,
                                          "pages_min": policy.pages_min, "pages_max": policy.pages_max}}


def check_record(data) -> dict:
    """The journal's ``ksm_policy`` held to its grammar; ValueError naming what is wrong."""
    def whole(value, low=0, high=1 << 50) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value < high

    if not isinstance(data, dict) or set(data) != {*RECORD_INTS, "pages_to_scan", "at", "policy"}:
        raise ValueError("ksm_policy is not a decision kvmtune recorded")
    if not all(whole(data[k]) for k in RECORD_INTS) or data["run"] not in (0, 1):
        raise ValueError("ksm_policy holds a number that is not one")
    if not (data["pages_to_scan"] is None or whole(data["pages_to_scan"], 0, 1 << 31)):
        raise ValueError("ksm_policy pages_to_scan is not a page count")
    if not isinstance(data["at"], str) or len(data["at"]) > 40:
        raise ValueError("ksm_policy at is not a time")
    policy = data["policy"]
    if not isinstance(policy, dict) or set(policy) != {"threshold", "hysteresis", "pages_min", "pages_max"} \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in policy.values()):
        raise ValueError("ksm_policy policy is not a policy")
    return data


def from_record(data: dict) -> tuple[Decision, Policy]:
    p = data["policy"]
    return (Decision(*(data[k] for k in ("run", "pages_to_scan", "available_kb", "total_kb", "start_kb",
                                          "stop_kb", "at"))),
            Policy(float(p["threshold"]), float(p["hysteresis"]), int(p["pages_min"]), int(p["pages_max"])))
