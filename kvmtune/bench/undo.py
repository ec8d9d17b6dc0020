"""bench's undo on disk: the engine's lock and journal, held while a run changes pools, KSM or
the osnoise tracer's files.

Opened before the run reads the host, it takes the lock apply and rollback take, puts
back first what a killed bench left (the journal names it: a kill -9 runs no
``finally``), and refuses to start over an interrupted apply or rollback. Each change
is then journaled before it is written (tune.journal's bench section), and closing
puts back what the run changed, reads each back, and returns the state file to
exactly what the run found, or removes it if there was none.
"""

from __future__ import annotations

import contextlib
import signal
import time

from kvmtune.errors import Busy, HostError, KvmtuneError
from kvmtune.tune import journal as journal_mod, journal_bench
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED
from kvmtune.tune.engine import Context, Locked, interrupted_message
from kvmtune.tune.ksm import KsmChange
from kvmtune.tune.pools import PoolChange


SHIELDED = {signal.SIGINT, signal.SIGTERM}
POOL_RETRIES, POOL_RETRY_S = 20, 0.1  # up to 2 s for freed huge pages to reach the pool


@contextlib.contextmanager
def shielded():
    """Ctrl-C and SIGTERM wait while the journal and the host are brought to agree: a run
    interrupted there would leave a staged journal, or a change its ``finally`` cannot see."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SHIELDED)


class Undo:
    def __init__(self, host, journaled: bool):
        self.host, self.journaled = host, journaled
        self.journal = self.found = None
        self.saved = False  # whether the journal on disk holds this run's bench section
        self.notes: list[str] = []  # what a killed bench left and this run put back first
        self._lock = None

    def start(self) -> None:
        if not self.journaled:
            self._warn_only()
            return
        self._lock = Locked(self.host, wait=False)
        self._lock.__enter__()
        try:
            with shielded():
                self._settle()
        except BaseException:
            self.release()
            raise

    def _warn_only(self) -> None:
        """A run that may change nothing cannot put back what a killed bench left; it says so
        (a grown pool would show as free pages). A state it may not read is not its business."""
        try:
            journal = journal_mod.load(self.host)
        except KvmtuneError:
            return
        if journal is not None and journal.interrupted:
            self.notes.append(interrupted_message(journal))

    def release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def _settle(self) -> None:
        journal, found = journal_mod.load_found(self.host)
        journal_mod.clear_debris(self.host, journal)
        if journal is not None and journal.interrupted:
            if journal.bench is None:
                raise Busy(interrupted_message(journal))
            done, problems = restore(self.host, journal.bench["records"])
            tracer, more = journal_bench.put_back_tracer(self.host, journal_bench.tracer_saved(journal.bench))
            done, problems = done + tracer, problems + more
            if problems:
                raise Busy(f"{journal.interrupted} was interrupted, and what it changed cannot be put back "
                           f"({'; '.join(problems)}): run 'kvmtune rollback'")
            journal_mod.put_back(self.host, journal)
            self.notes.append(f"{journal.interrupted} was interrupted; what it left changed was put back "
                              f"first{': ' + ', '.join(done) if done else ''}")
            journal, found = journal_mod.load_found(self.host)
        self.journal, self.found = journal, found

    def _section(self) -> None:
        """The journal with this run's bench section, begun at the first change."""
        if not self.journaled:
            raise RuntimeError("a bench that was not opened to change the host changed it")
        if self.journal is None or self.journal.bench is None:
            self.journal = self.journal or journal_mod.Journal()
            journal_bench.begin(self.journal, self.found)

    def write(self, change) -> None:
        """Journal the change's original (bench's section, and ``records`` where it has none
        yet), save, and only then make the change."""
        with shielded():
            self._section()
            if journal_bench.record(self.journal, change) or not self.saved:
                journal_mod.save(self.host, self.journal)  # the original is on disk before the write
                self.saved = True
            change.execute(self.host, Context())

    def tracer(self, saved: list) -> None:
        """Journal the osnoise files written so far and their texts before (bench.osnoise), and
        save, before the next is written; an empty list: all are back, the record goes."""
        with shielded():
            self._section()
            journal_bench.journal_tracer(self.journal, saved)
            journal_mod.save(self.host, self.journal)
            self.saved = True

    def close(self) -> list[str]:
        """Put back this run's changes, newest first; problems, as sentences. The state file
        returns to what the run found only when every change reads back as before."""
        if not self.saved:
            return []
        _, problems = restore(self.host, self.journal.bench["records"], newest_first=True)
        problems += journal_bench.put_back_tracer(self.host, journal_bench.tracer_saved(self.journal.bench))[1]
        if problems:
            return problems + ["the journal keeps what is not back: 'kvmtune rollback' or the next bench puts "
                               "it back"]
        journal_mod.put_back(self.host, self.journal)  # the state file as the run found it
        self.saved = False
        return []


def restore(host, records: dict, newest_first: bool = False) -> tuple[list[str], list[str]]:
    """Put each target a bench journaled back to its original through the engine's change
    types (re-read, write if it differs, read back): (what was put back, problems)."""
    done, problems = [], []
    for record in reversed(list(records.values())) if newest_first else records.values():
        if record["type"] == "pool":
            change = PoolChange(record["size_kb"], None, None, record["original"])
        else:
            change = KsmChange(record["knob"], None, record["original"])
        try:
            change.before = change.read(host)
        except HostError as exc:
            problems.append(f"could not read /{change.rel}: {exc.reason}")
            continue
        change.execute(host, Context())
        for _ in range(POOL_RETRIES if record["type"] == "pool" else 0):
            if change.status not in (FAILED, BLOCKED):
                break
            # The guest's huge pages go back to the pool when the kernel lets go of the last
            # mapping of them (its MMU's too), which can lag the munmap: ask again shortly.
            time.sleep(POOL_RETRY_S)
            change.before = change.read(host)
            change.execute(host, Context())
        if change.status in (FAILED, BLOCKED):
            problems.append(f"could not put {change.target} back to {record['original']}: {change.detail}")
        elif change.status == CHANGED:
            done.append(f"{change.target} {change.before} -> {record['original']}")
    return done, problems
