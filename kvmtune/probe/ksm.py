"""Kernel same-page merging: run state, knobs and counters of /sys/kernel/mm/ksm.

Memory saved now is (pages_sharing + ksm_zero_pages) x page size
(Documentation/admin-guide/mm/ksm.rst: with use_zero_pages, the sum "represents
the actual number of pages saved by KSM").
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.grammar import digits

KSM_DIR = "sys/kernel/mm/ksm"
RUN_STATES = {0: "stopped", 1: "running", 2: "unmerging"}
COUNTERS = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile",
            "pages_scanned", "pages_skipped", "full_scans", "ksm_zero_pages", "general_profit",
            "stable_node_chains", "stable_node_dups")


@record
class KsmFacts:
    values: dict[str, int | str]  # every file of /sys/kernel/mm/ksm
    page_size: int
    problems: tuple[str, ...] = ()
    captured: bool = True  # False: a snapshot without /sys/kernel/mm/ksm

    @property
    def available(self) -> bool:
        return "run" in self.values

    def get(self, key: str) -> int | None:
        value = self.values.get(key)
        return value if isinstance(value, int) else None

    @property
    def saved_bytes(self) -> int:
        return ((self.get("pages_sharing") or 0) + (self.get("ksm_zero_pages") or 0)) * self.page_size

    def to_json(self) -> dict:
        run = self.get("run")
        return {
            "available": self.available,
            "run": run,
            "state": RUN_STATES.get(run) if run is not None else None,
            "knobs": {k: v for k, v in self.values.items() if k not in COUNTERS and k != "run"},
            "counters": {k: v for k, v in self.values.items() if k in COUNTERS},
            "page_size": self.page_size,
            "saved_bytes": self.saved_bytes,
        }


def read_ksm(host: Host) -> KsmFacts:
    values: dict[str, int | str] = {}
    problems = []
    for name in host.listdir(KSM_DIR):
        try:
            text = host.read(f"{KSM_DIR}/{name}").strip()
        except HostError as exc:
            problems.append(f"/{KSM_DIR}/{name}: {exc.reason}")
            continue
        values[name] = int(text) if digits(text.lstrip("-")) and len(text) < 20 else text
    return KsmFacts(values, host.page_size, tuple(problems), host.live or host.is_dir(KSM_DIR))
