"""Carry out plans under one lock, journal first: apply, undo after a failure, rollback.

Apply reads and plans without the lock; if anything is to change it takes the lock,
reads the journal, reads and plans again (what it acts on is what it saw under the
lock), journals every target's original, saves, and only then writes. A change that
fails undoes this run's earlier changes (unless keep_partial), newest first.
Rollback reads the journal under the same lock, plans from it, and forgets it only
when everything is back.
"""

from __future__ import annotations

import errno

from kvmtune.errors import Busy, HostError, Refused
from kvmtune.tune import journal as journal_mod, journal_bench
from kvmtune.tune.binding import hold_unbound
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, OK, PENDING, UNDONE, Plan
from kvmtune.tune.created_dirs import CreatedDirs
from kvmtune.tune.facts import read_for_profile, read_for_rollback
from kvmtune.tune.files import FileChange, is_ours, unrecorded_warning
from kvmtune.tune.planner import build_plan, plan_rollback
from kvmtune.tune.pools import PoolChange


class Context:
    """What a change may need while it runs: the profile's compact flag, a progress display."""

    def __init__(self, compact: bool = False, progress=None):
        self.compact = compact
        self.progress = progress


def preflight(host) -> None:
    """On a live host, refuse before any write rather than fail half-way."""
    import os

    if not host.live:
        return
    if os.geteuid() != 0:
        raise Refused("apply and rollback change the kernel and /etc: run as root (e.g. with sudo)")
    if host.read_only("proc/sys"):
        raise Refused("/proc/sys is read-only here (a container?): nothing can be applied")


class Locked:
    def __init__(self, host, wait: bool):
        self.host, self.wait, self.fd = host, wait, None

    def __enter__(self):
        try:
            self.fd = self.host.lock(self.wait)
        except HostError as exc:
            if exc.errno == errno.EWOULDBLOCK:
                raise Busy(f"{exc.reason} (use --wait to wait for it)") from None
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.host.unlock(self.fd)


def interrupted_message(journal) -> str:
    if journal.bench is not None:
        return (f"{journal.interrupted} was interrupted and left pools or KSM changed: run 'kvmtune rollback' "
                "to put everything back, or the next 'kvmtune bench' puts back what it changed")
    return (f"{journal.interrupted} was interrupted and left the host part-way: run 'kvmtune rollback' "
            "to put everything back, or 'kvmtune apply PROFILE --resume' to carry on from where it is")


def plan_profile(host, profile, *, persist: bool = True, force: bool = False, judge_last: bool = False) -> Plan:
    plan = build_plan(profile, read_for_profile(host, profile, persist), persist=persist, force=force,
                      judge_last=judge_last)
    journal = journal_mod.load(host)
    if journal is not None and journal.interrupted:
        plan.warnings.append(interrupted_message(journal))
    return plan


def apply_profile(host, profile, *, persist=True, force=False, keep_partial=False, wait=False,
                  resume=False, ctx: Context | None = None, only=None) -> Plan:
    """``only``: a predicate narrowing the plan to some changes (watch --reapply: runtime knobs)."""

    def make() -> Plan:
        plan = build_plan(profile, read_for_profile(host, profile, persist), persist=persist, force=force)
        if only is not None:
            plan.changes = [c for c in plan.changes if only(c)]
        return plan

    return carry_out(host, make, getattr(profile, "name", None), keep_partial=keep_partial, wait=wait,
                     resume=resume, ctx=ctx)


def carry_out(host, make_plan, name: str | None, *, keep_partial=False, wait=False, resume=False,
              ctx: Context | None = None) -> Plan:
    """Plan (``make_plan()``), then, if anything is to change, under the lock: plan again, journal
    every original, write, undo this run's changes after a failure (apply's core; watch --install
    carries out its unit files through it)."""
    ctx = ctx or Context()
    plan = make_plan()
    if not plan.pending and not resume and not (plan.notes and journal_mod.load(host) is not None):
        return plan  # nothing to change (nor a new decision for an existing journal): no lock, no write
    preflight(host)
    with Locked(host, wait):
        journal = journal_mod.load(host)
        if journal is not None and journal.interrupted and (not resume or journal.bench is not None):
            raise Busy(interrupted_message(journal))
        journal_mod.clear_debris(host, journal)
        plan = make_plan()
        if not plan.pending:
            if journal is not None and (journal.interrupted or plan.notes):
                journal.data.update(plan.notes)  # a policy's new decision that the host already matches
                journal.finish()
                journal_mod.save(host, journal)
            return plan
        _refuse_links(host, plan.pending)
        fresh = journal is None
        journal = journal or journal_mod.Journal()
        journal.begin("apply", name)
        added = _journal_plan(journal, plan)
        journal.data.update(plan.notes)  # recorded with the originals: verify judges against it
        journal_mod.save(host, journal)  # the originals are on disk before the first write
        done = _run(plan.pending, host, ctx)
        if done and done[-1].status == FAILED and not keep_partial:
            _undo(done, host)
            kept = _not_back(host, {k: journal.records[k] for k in added})
            for key in added:
                if key not in kept:
                    journal.records.pop(key, None)
            if kept:
                _report_kept(plan, [c for c in done if c.key in kept])
            if fresh and not journal.records:
                journal_mod.forget(host, journal)
                return plan
        for c in done:
            if c.key in journal.records:  # a shared file's proof: only the lines now written
                journal.records[c.key]["original"] = c.settled_original(journal.records[c.key]["original"])
        journal.finish()
        journal_mod.save(host, journal)
    return plan


def _refuse_links(host, pending) -> None:
    """A link anywhere on a path a change writes is refused before anything is written (the
    host layer refuses it again at the write). The paths are those whose temp files the
    changes name: files, shared files and a snapshot's knobs (a live kernel's have no links)."""
    for c in pending:
        for rel, _ in c.temp_paths(host.live):
            link = host.path_state(rel).link
            if link is not None:
                raise Refused(f"/{link} is a symbolic link: kvmtune writes nothing through a link (/{rel})")


def _journal_plan(journal, plan: Plan) -> list[str]:
    """Record the original of every target this run will write; first name what looks like
    kvmtune's own but has no record (once recorded, nothing would tell it)."""
    added = []
    for c in plan.changes:
        if c.key in journal.records:
            continue
        warning = unrecorded_warning(c)
        if warning:
            plan.warnings.append(warning)
        # A sealed leftover is adopted even when unchanged, so that rollback removes it.
        if c.status == PENDING or (isinstance(c, FileChange) and is_ours(c.before)):
            journal.record(c)
            added.append(c.key)
    for c in plan.pending:
        record = journal.records[c.key]
        record["original"] = c.renewed_original(record["original"])
    return added


def _run(pending, host, ctx: Context) -> list:
    done = []
    for c in pending:
        if ctx.progress is not None and isinstance(c, PoolChange):
            with ctx.progress(f"allocating {c.target}: {c.before} -> {c.after} pages"):
                c.execute(host, ctx)
        else:
            c.execute(host, ctx)
        done.append(c)
        if c.status == FAILED:
            break
    return done


def _undo(done: list, host) -> None:
    """Put back what this run changed, newest first; the failed change may have half-happened."""
    for c in reversed(done):
        if c.status == OK:
            continue
        try:
            c.undo(host)
        except HostError as exc:
            c.detail = (c.detail + "; " if c.detail else "") + f"undo failed: {exc}"
            continue
        if c.status == FAILED:
            c.detail += f"; put back to {c.shown(c.before)}"
        else:
            c.status, c.detail = UNDONE, (c.detail + "; " if c.detail else "") + "undone after a later failure"


def _report_kept(plan: Plan, changes: list) -> None:
    """Say which changes stayed after the undo, and that the journal keeps them for rollback."""
    for c in changes:
        if c.status == UNDONE:  # the undo returned, but the target reads otherwise
            c.status = CHANGED
        c.detail = (c.detail + "; " if c.detail else "") + "not back after the undo: kept in the journal"
    plan.kept = [c.key for c in changes]
    plan.warnings.append(f"could not put back {', '.join(c.target for c in changes)} after the failure: "
                         "kept in the journal, 'kvmtune rollback' restores it")


def _not_back(host, records: dict) -> set[str]:
    """Keys of this run's records whose target an undo did not verifiably put back: read back
    as rollback would read it, a record is settled only if rollback would have nothing to do."""
    if not records:
        return set()
    try:
        plan = plan_rollback(records, read_for_rollback(host, records))
    except HostError:
        return set(records)  # unreadable: not verifiably back
    kept = set()
    for c in plan.changes:
        if c.status != OK:
            kept |= c.owners_of(c.before) if isinstance(c, CreatedDirs) else {c.key}
    return kept & set(records)


def rollback(host, *, wait: bool = False, check: bool = False) -> tuple[Plan | None, list[str]]:
    """(plan, debris removed); plan is None when there was nothing to roll back."""
    if check:
        journal = journal_mod.load(host)
        if journal is None:
            return None, []
        plan = plan_rollback(journal.records, read_for_rollback(host, journal.records))
        hold_unbound(host, plan)
        plan.warnings += journal_bench.tracer_pending(host, journal)
        return plan, []
    preflight(host)
    with Locked(host, wait):
        journal = journal_mod.load(host)
        debris = journal_mod.clear_debris(host, journal)
        if journal is None:
            return None, debris
        tracer = journal_bench.rollback_tracer(host, journal)  # the bench section goes with begin
        journal.begin("rollback")
        journal_mod.save(host, journal)
        plan = plan_rollback(journal.records, read_for_rollback(host, journal.records))
        plan.warnings += tracer
        hold_unbound(host, plan)
        for c in plan.pending:
            c.execute(host, Context())
        unsettled = {c.key for c in plan.changes if c.status in (FAILED, BLOCKED)}
        if unsettled:  # a directory left only because an unsettled target is in it comes next time
            unsettled |= {k for c in plan.changes if isinstance(c, CreatedDirs) for k in c.owners_of(c.left)}
            for key in [k for k in journal.records if k not in unsettled]:
                journal.records.pop(key)  # back to its original: nothing more to remember
            journal.finish()
            journal_mod.save(host, journal)
        else:
            journal_mod.forget(host, journal)
    return plan, debris
