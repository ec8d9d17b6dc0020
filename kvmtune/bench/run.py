"""A bench run: decide what the host can have, build one VM, measure in paired rounds, put back.

Every backing lives in the same VM and every round measures all of them in a fresh
shuffled order, so a ratio compares two walks taken moments apart (back-to-back runs
of one backing after another drift too much on a host that is itself a guest).
Whatever the run changed (pool sizes with --grow-pools, KSM with --ksm, the osnoise
tracer's files with the noise section) is journaled
before it is written, put back in ``finally``, also on Ctrl-C, and read back; after a
kill -9, rollback or the next bench puts it back.
"""

from __future__ import annotations

import os
import signal
import time

from kvmtune.bench import ksm as ksm_section
from kvmtune.bench.hostmem import BACKINGS, GiB, MiB
from kvmtune.bench.backings import Closer, backings
from kvmtune.bench.exits import measure_exits
from kvmtune.bench.host_guard import HostGuard
from kvmtune.bench.host_info import describe_host, usable_kb
from kvmtune.bench.interference import Window
from kvmtune.bench.stats import MIN_VERDICT_ROUNDS
from kvmtune.bench.undo import SHIELDED, Undo
from kvmtune.bench.walks import measure_walks
from kvmtune.errors import HostError, Refused

SCHEMA_VERSION = 1
SECTIONS = ("memory", "exits", "native", "ksm", "noise")
EMULATED_RATIO = 20  # an emulated guest runs an ALU loop ~1000x slower; a native one ~1x


class Settings:
    def __init__(self, quick: bool = False, size: int | None = None, rounds: int | None = None,
                 sections: tuple[str, ...] = ("memory", "exits", "native"), grow_pools: bool = False,
                 seed: int = 1, backings: tuple[str, ...] | None = None, budget_s: float | None = None,
                 cpus: list[int] | None = None, duration: float | None = None):
        self.quick = quick
        self.size_given = size is not None
        self.size = size if size is not None else (64 * MiB if quick else GiB)
        # The least rounds (budget allowing): six give a 95 % interval whatever the noise (stats);
        # more follow until the ratios converge or the budget ends.
        self.rounds = rounds or MIN_VERDICT_ROUNDS
        self.exit_rounds = 3 if quick else 5  # exits vary little run to run (2-3 %): no interval needed
        self.budget_s = budget_s if budget_s is not None else (10.0 if quick else 60.0)
        self.started = time.monotonic()
        self.deadline = self.started + self.budget_s
        # Walks timed by CPU time need not be long (100 k accesses: ~20 ms); short walks fit enough
        # rounds in the budget for an interval also when the host's load stretches each round 2-3
        # times in wall time.
        self.accesses = 100_000 if quick else 250_000
        self.exit_counts = ({"kernel_pio": 2500, "cpuid": 2500, "user_pio": 250, "mmio": 250} if quick
                            else {"kernel_pio": 20000, "cpuid": 20000, "user_pio": 2000, "mmio": 2000})
        self.ksm_pages = 1024 if quick else 4096
        self.ksm_timeout_s = 15.0 if quick else 40.0
        self.sections = sections
        self.grow_pools = grow_pools
        self.seed = seed
        # A quick run leaves hugetlb 1G out: its first touch zeroes a whole 1 GiB page for a 64 MiB
        # walk (12 s of a loaded run here), and a guest maps 2M at most, so 1G measures as 2M.
        self.backings = backings or (tuple(b for b in BACKINGS if b != "hugetlb-1G") if quick else BACKINGS)
        self.cpus = cpus  # the noise section's CPUs; None: the isolated ones, else every online one
        self.duration = duration if duration is not None else (3.0 if quick else 10.0)  # the noise window

    def to_json(self) -> dict:
        return {"quick": self.quick, "size": self.size, "rounds": self.rounds, "accesses": self.accesses,
                "sections": list(self.sections), "grow_pools": self.grow_pools, "seed": self.seed,
                "backings": list(self.backings), "budget_s": self.budget_s, "duration_s": self.duration}

    def start_clock(self) -> None:
        """The budget counts from the start of the run (setup and rounds), so a quick run's length
        is bounded whatever the host's load."""
        self.started = time.monotonic()
        self.deadline = self.started + self.budget_s


class BenchInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a run; carries what restoring the host found."""

    def __init__(self, problems: list[str]):
        super().__init__("interrupted")
        self.problems = problems


def run_bench(host, settings: Settings, progress=None) -> dict:
    """Measure; the result as the JSON contract. Refused if the memory is not there.

    A run that may change pools, KSM or the osnoise tracer holds the engine's lock throughout,
    and puts back first what a killed bench left, before it reads anything (bench.undo)."""
    tracer = "noise" in settings.sections and hasattr(host, "write")  # a read-only host runs no tracer
    undo = Undo(host, settings.grow_pools or "ksm" in settings.sections or tracer)
    undo.start()
    try:
        return _run(host, settings, progress or (lambda text, done=None, total=None: None), undo)
    finally:
        undo.release()


def _run(host, settings: Settings, progress, undo: Undo) -> dict:
    began = time.perf_counter()
    settings.start_clock()
    result = {"schema_version": SCHEMA_VERSION, "host": describe_host(host), "settings": settings.to_json(),
              "memory": [], "exits": None, "native": [], "ksm": None, "emulated": None,
              "warnings": list(undo.notes), "changes": [], "skipped": {}, "host_restored": True,
              "rounds_run": 0, "not_converged": [], "disturbed": False, "steal_pct": None, "interference": None,
              "noise": None}
    _fit_size(settings, result)
    guard = HostGuard(host, undo)
    held: list = []  # what to release, in reverse, before the guard puts the host back
    interrupted = False
    try:
        _measure(host, settings, result, guard, held, progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the putting back short: signals wait until it is done.
        signal.pthread_sigmask(signal.SIG_BLOCK, SHIELDED)
        try:
            while held:
                held.pop().close()
            problems = guard.restore()
        finally:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, SHIELDED)
            except KeyboardInterrupt:
                interrupted = True
        result["changes"] = guard.notes
        result["warnings"] += problems
        result["host_restored"] = result["host_restored"] and not problems
    if interrupted:
        raise BenchInterrupted(problems)
    result["elapsed_s"] = round(time.perf_counter() - began, 2)
    return result


def _fit_size(settings: Settings, result: dict) -> None:
    usable, reserve_kb = usable_kb(result["host"])
    general = sum(1 for k in ("4k", "thp") if k in settings.backings) if _needs_backings(settings) else 0
    needed_kb = general * settings.size // 1024
    if needed_kb <= usable:
        return
    if settings.size_given:
        raise Refused(f"--size {settings.size >> 20}M needs {needed_kb >> 10} MiB of free memory for the "
                      f"4K and THP copies; only {max(usable, 0) >> 10} MiB are free above the reserve of "
                      f"{reserve_kb >> 10} MiB that apply keeps for the host")
    fitted = settings.size
    while fitted > 16 * MiB and general * fitted // 1024 > usable:
        fitted //= 2
    if general * fitted // 1024 > usable:
        raise Refused(f"not enough free memory above the reserve of {reserve_kb >> 10} MiB for a run")
    result["warnings"].append(f"working set cut from {settings.size >> 20} MiB to {fitted >> 20} MiB to keep "
                              f"the host's reserve of {reserve_kb >> 10} MiB free")
    settings.size = fitted
    result["settings"]["size"] = fitted


def _needs_backings(settings: Settings) -> bool:
    return "memory" in settings.sections or "native" in settings.sections


def _measure(host, settings: Settings, result: dict, guard: HostGuard, held: list, progress) -> None:
    from kvmtune.bench.guest import BenchVm, GuestFailed
    from kvmtune.bench.native import Native

    if "noise" in settings.sections:
        _noise(host, settings, result, progress, guard.undo)
    window = Window(host)  # before the first walk; ksmd's own work below is not interference
    progress("preparing host memory")
    mappings, skips = (backings(host, settings, guard, held, result["host"]) if _needs_backings(settings)
                       else ([], {}))
    kvm_fd, why_not = None, None
    try:
        kvm_fd = host.open_device("dev/kvm")
        held.append(Closer(lambda: os.close(kvm_fd)))
    except HostError as exc:
        why_not = f"/dev/kvm cannot be opened: {exc.reason}"
    vm = None
    if kvm_fd is not None and ({"memory", "exits"} & set(settings.sections)):
        progress("building the guest")
        guest_regions = mappings if "memory" in settings.sections else []
        try:
            vm = BenchVm(kvm_fd, guest_regions)
            held.append(vm)
        except GuestFailed as exc:
            why_not = str(exc)
        except OSError as exc:
            why_not = f"KVM refused the VM: {exc.strerror}"
    native = Native() if _needs_backings(settings) or vm is not None else None
    if native is not None:
        held.append(native)
    if vm is not None:
        result["emulated"] = _emulated(vm, native)
        if result["emulated"]:
            result["warnings"].append("the guest runs emulated (an ALU loop is far slower than on the host): "
                                      "these figures do not describe this host's guests")
    for section in ("memory", "exits"):
        if section in settings.sections and vm is None:
            result["skipped"][section] = why_not
    if _needs_backings(settings):
        measure_walks(settings, result, mappings, skips, vm if "memory" in settings.sections else None,
                native if "native" in settings.sections else None, progress)
    if vm is not None and "exits" in settings.sections:
        measure_exits(settings, result, vm, progress)
    if set(settings.sections) - {"noise"}:  # the noise section holds every CPU: no one else's share to judge
        _interference(result, window)
    if "ksm" in settings.sections:
        progress("KSM: waiting for ksmd to merge two identical regions")
        result["ksm"], reason = ksm_section.measure(host, guard, kvm_fd, settings.ksm_pages,
                                                    settings.ksm_timeout_s, held)
        if reason:
            result["skipped"]["ksm"] = reason


def _noise(host, settings: Settings, result: dict, progress, undo: Undo) -> None:
    """The noise window comes first, while the bench has built nothing. It counts within the run's
    budget, which bounds a run's length whatever is measured (a quick full run: 3 of its 10 s)."""
    from kvmtune.bench.noise import choose_cpus, measure_noise

    cpus, how = choose_cpus(host, settings.cpus)
    result["noise"], problems = measure_noise(host, cpus, settings.duration, how, progress,
                                              journal=undo.tracer if undo.journaled else None)
    if problems:
        result["warnings"] += problems
        result["host_restored"] = False


def _interference(result: dict, window: Window) -> None:
    seen = window.end(result["host"]["cpus"])
    result.update(interference=seen, disturbed=seen["disturbed"], steal_pct=seen["steal_pct"])
    if seen["disturbed"]:
        result["warnings"].append("the host was disturbed while the bench measured (" + "; ".join(seen["reasons"])
                                  + "): the intervals are wider for it, and figures may not converge")


def _emulated(vm, native) -> bool:
    from kvmtune.bench.guest import cpu_seconds

    count = 200_000
    guest = min(vm.call("alu", count) for _ in range(3))
    host = []
    for _ in range(3):  # the clock the guest call is timed by
        t = cpu_seconds()
        native.alu(count)
        host.append(cpu_seconds() - t)
    return guest > EMULATED_RATIO * max(min(host), 50e-6)


