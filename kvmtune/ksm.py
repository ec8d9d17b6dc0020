"""Kernel same-page merging: run state, knobs and counters of /sys/kernel/mm/ksm.

Memory saved now is (pages_sharing + ksm_zero_pages) x page size
(Documentation/admin-guide/mm/ksm.rst: with use_zero_pages, the sum "represents
the actual number of pages saved by KSM").
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host import Host

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
        values[name] = int(text) if text.lstrip("-").isdigit() else text
    return KsmFacts(values, host.page_size, tuple(problems))


# -- planning -----------------------------------------------------------------

# The kernel refuses these with EBUSY while any page is merged, even with run=0:
# only run=2 (unmerge everything) frees them (observed on 6.18; ksm.rst says the same
# of merge_across_nodes).
STICKY = ("merge_across_nodes", "max_page_sharing")
UNMERGE_WARNING = ("KSM: writing run=2 unmerges every merged page at once; the host needs free "
                   "memory for all of them, or the OOM killer runs (ksm.rst)")


def ordered_knobs(knobs) -> list[str]:
    """advisor_mode first (switching it resets pages_to_scan), the advisor's knobs, the
    rest, run last so ksmd starts with its final settings."""
    rank = {"advisor_mode": 0}
    return sorted(knobs, key=lambda k: (rank.get(k, 1 if k.startswith("advisor_") else 3 if k == "run" else 2), k))


def plan_ksm(profile, host: Host, facts, warnings: list[str]) -> list:

    if not profile.ksm:
        return []
    ksm = facts.ksm
    first = next(iter(profile.ksm.values()))[1]
    if not ksm.available:
        raise first.error("this kernel has no KSM (/sys/kernel/mm/ksm is missing)")
    for key, (_, node) in profile.ksm.items():
        if key not in ksm.values:
            raise node.error(f"this kernel has no /{KSM_DIR}/{key}")
    return plan_ksm_values(host, {k: v for k, (v, _) in profile.ksm.items()}, profile.allow_unmerge,
                           warnings)


def plan_ksm_values(host: Host, wanted: dict, allow_unmerge: bool, warnings: list[str]) -> list:
    """Shared by apply and rollback: the same ordering rules either way."""
    from kvmtune.plan import BLOCKED, PENDING, Change, knob_change

    changes = []
    knobs = {k: knob_change(host, f"ksm {k}", f"{KSM_DIR}/{k}", v, selector=(k == "advisor_mode"))
             for k, v in wanted.items()}
    merged = parse_int(host.read_optional(f"{KSM_DIR}/pages_shared")) or 0
    sticky = [k for k in STICKY if k in knobs and knobs[k].status == PENDING]
    run_now = parse_int(host.read_optional(f"{KSM_DIR}/run"))
    if sticky and merged:
        if allow_unmerge:
            changes.append(Change("ksm run (unmerge first)", "unmerge", f"{KSM_DIR}/run", str(run_now), "2",
                                  detail=f"{merged} pages merged; {', '.join(sticky)} can change only "
                                         "after they are unmerged"))
            warnings.append(UNMERGE_WARNING)
            if "run" not in knobs and run_now != 2:  # put ksmd back as it was
                knobs["run"] = Change("ksm run", "knob", f"{KSM_DIR}/run", "2", str(run_now))
            elif "run" in knobs:
                knobs["run"].status = PENDING if knobs["run"].after != "2" else knobs["run"].status
        else:
            for k in sticky:
                knobs[k].status = BLOCKED
                knobs[k].detail = (f"{merged} pages are merged and the kernel refuses the change (EBUSY) "
                                   "until they are unmerged; set ksm.allow_unmerge: true to write run=2 "
                                   "first (needs free memory for every merged page)")
    if "advisor_mode" in knobs and knobs["advisor_mode"].status == PENDING and "pages_to_scan" in knobs:
        knobs["pages_to_scan"].status = PENDING  # the switch resets it (observed)
        knobs["pages_to_scan"].detail = "rewritten: changing advisor_mode resets pages_to_scan"
    changes += [knobs[k] for k in ordered_knobs(knobs)]
    return changes


def parse_int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None
