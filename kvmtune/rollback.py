"""Put back everything kvmtune changed, as recorded in the state file, then forget it.

Rollback is planned like an apply, with the same ordering rules (KSM's sticky
knobs need an unmerge first), in the reverse order of apply: files, THP, KSM,
mounts, pools, sysctls.
"""

from __future__ import annotations

from kvmtune.apply import execute, forget_state, preflight
from kvmtune.ksm import KSM_DIR, plan_ksm_values
from kvmtune.plan import FAILED, OK, PENDING, Change, Plan, knob_change
from kvmtune.state import Lock, load_state
from kvmtune.thp import THP_DIR


def plan_rollback(host) -> Plan | None:
    state = load_state(host)
    if state is None:
        return None
    warnings: list[str] = []
    changes: list[Change] = []
    for rel, original in state.files.items():
        current = host.read_optional(rel)
        changes.append(Change(f"/{rel}", "file", rel, current, original, status=OK if current == original else PENDING,
                              detail="restored" if original is not None else "removed"))
    values = dict(state.values)
    for rel in [r for r in values if r.startswith(THP_DIR)]:
        changes.append(knob_change(host, f"thp {rel.rsplit('/', 1)[1]}", rel, values.pop(rel), selector=True))
    ksm = {rel.rsplit("/", 1)[1]: values.pop(rel) for rel in list(values) if rel.startswith(KSM_DIR)}
    ksm = {k: v for k, v in ksm.items() if v is not None}
    if ksm:
        changes += plan_ksm_values(host, ksm, allow_unmerge=True, warnings=warnings)
    mounted = {line.split()[1] for line in (host.read_optional("proc/mounts") or "").splitlines() if len(line.split()) > 1}
    for path, record in state.mounts.items():
        if record.get("was") is None and path in mounted:
            changes.append(Change(f"hugetlbfs {path}", "unmount", None, "mounted", None,
                                  detail="unmounted", meta={"path": path, "dirs": record.get("dirs", [])}))
    for rel in sorted([r for r in values if "hugepages" in r], key=lambda r: r.count("/")):
        original = values.pop(rel)
        if original is not None:
            change = knob_change(host, f"hugepages {rel.split('/')[-2]}", rel, original)
            change.kind = "pool_restore"
            changes.append(change)
    for rel, original in values.items():
        if original is not None:
            changes.append(knob_change(host, "sysctl " + rel[len("proc/sys/"):].replace("/", "."), rel, original))
    for c in changes:
        if c.kind == "unmerge":
            c.status = PENDING
    return Plan(None, changes, warnings), state


def rollback(host, *, wait: bool = False, check: bool = False):
    """(plan, state) after rolling back; plan is None when there is nothing to roll back."""
    planned = plan_rollback(host)
    if planned is None:
        return None
    plan, state = planned
    if check:
        return plan
    preflight(host)
    with Lock(host, wait):
        for c in plan.changes:
            if c.status == PENDING:
                execute(c, host, state)
        if not any(c.status == FAILED for c in plan.changes):
            forget_state(host, state)
    return plan
