"""The KSM pressure policy on the live kernel: a real allocation (anonymous mmap, every page
touched) pushes MemAvailable below a threshold set just under what was available at the start,
and the policy turns KSM on; freeing it turns KSM back off. The allocation stays small (this
machine has no swap): the threshold sits 384 MiB under the start, the allocation is 1 GiB. Other
processes on this shared machine move MemAvailable by hundreds of MiB too: a cycle that their
memory spoiled (the decision agrees with MemAvailable, MemAvailable moved against the test) is
tried again, up to five times.
KSM's knobs and kvmtune's state are put back exactly, even when an assertion fails."""

import mmap
import os
import time

import pytest

KSM = "/sys/kernel/mm/ksm"
STATE = "/var/lib/kvmtune/state.json"
MIB = 1024  # kB
BELOW, ALLOCATE = 384 * MIB, 1024 * MIB


def _can_run() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access(f"{KSM}/run", os.W_OK):
        return f"{KSM}/run is not writable here"
    if os.path.exists(STATE):
        return f"{STATE} exists: the test would mix its changes into another run's journal"
    return None


pytestmark = [pytest.mark.live, pytest.mark.skipif(_can_run() is not None, reason=_can_run() or "")]


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def meminfo() -> dict:
    return {line.split(":")[0]: int(line.split()[1]) for line in read("/proc/meminfo").splitlines()}


def ksm_state() -> dict:
    return {name: read(f"{KSM}/{name}") for name in ("run", "pages_to_scan", "sleep_millisecs")}


def touched(kb: int) -> mmap.mmap:
    """An anonymous private mapping of ``kb`` with every page written (so it is really backed)."""
    area = mmap.mmap(-1, kb * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, kb * 1024, mmap.PAGESIZE):
        area[offset] = 1
    return area


def policy_until(host, profile, run: int, tries: int = 12):
    """Apply the policy until it decides ``run`` (other processes move memory too), at most ``tries``."""
    from kvmtune.tune import ksm_policy

    for _ in range(tries):
        out = ksm_policy.apply(host, profile)
        if out.decision.run == run:
            return out
        time.sleep(0.5)
    return out


def cycle(host) -> str | None:
    """One on/off cycle; None when it held, else why the machine's own memory moved too much."""
    from kvmtune.profile import load_profile_text

    info = meminfo()
    total, start = info["MemTotal"], info["MemAvailable"]
    if start - ALLOCATE < 2 << 20:
        pytest.skip(f"only {start // MIB} MiB available: the allocation would leave the host short")
    threshold = 100 * (start - BELOW) / total
    band = 100 * 64 * MIB / total
    profile = load_profile_text("ksm:\n  policy: pressure\n"
                                f"  threshold: {threshold:.4f}%\n  hysteresis: {band:.4f}%\n"
                                "  pages_to_scan: {min: 64, max: 1250}\n")
    before = policy_until(host, profile, 0)
    if before.decision.run != 0:
        assert before.decision.available_kb <= before.decision.stop_kb, before.line()
        return f"before the allocation: {before.line()}"
    assert read(f"{KSM}/run").strip() == "0"

    area = touched(ALLOCATE)
    try:
        on = policy_until(host, profile, 1)
        if on.decision.run != 1:
            assert on.decision.available_kb >= on.decision.start_kb, on.line()  # below it, and still off: wrong
            return f"with the allocation: {on.line()}"  # someone else freed as much meanwhile
        assert read(f"{KSM}/run").strip() == "1"  # read back from the kernel
        assert 64 <= int(read(f"{KSM}/pages_to_scan")) <= 1250
        assert int(read(f"{KSM}/pages_to_scan")) == on.decision.pages_to_scan
    finally:
        area.close()
    off = policy_until(host, profile, 0)
    if off.decision.run != 0:
        assert off.decision.available_kb <= off.decision.stop_kb, off.line()  # above the band, still on: wrong
        return f"after freeing it: {off.line()}"  # someone else took the memory back meanwhile
    assert read(f"{KSM}/run").strip() == "0"
    return None


def follows_an_allocation() -> str | None:
    """None when MemAvailable drops by (most of) a touched allocation and comes back when it is
    freed; else what it did. On this VM it sometimes does neither (a first allocation made the
    kernel give up 1 GiB that MemAvailable had counted, and kept it; a later one moved it by
    0.1 GiB): no threshold can then be crossed on purpose, and the test has nothing to drive."""
    start = meminfo()["MemAvailable"]
    area = touched(ALLOCATE)
    held = meminfo()["MemAvailable"]
    area.close()
    time.sleep(0.5)
    back = meminfo()["MemAvailable"]
    if start - held < ALLOCATE * 0.8 or back - held < ALLOCATE * 0.8:
        return (f"MemAvailable does not follow a {ALLOCATE // MIB} MiB allocation here: {start // MIB} MiB, "
                f"{held // MIB} MiB with it, {back // MIB} MiB after freeing it")
    return None


def test_a_real_allocation_turns_ksm_on_and_freeing_it_turns_it_off():
    from kvmtune.host.writable import WritableHost
    from kvmtune.tune.engine import rollback

    for _ in range(3):  # the first allocation may settle what the kernel reclaims
        why = follows_an_allocation()
        if why is None:
            break
    if why is not None:
        pytest.skip(why)

    saved = ksm_state()
    host = WritableHost("/")
    noise = []
    try:
        for _ in range(5):  # other processes on this shared machine move MemAvailable too
            why = cycle(host)
            if why is None:
                break
            noise.append(why)
        assert len(noise) < 5, noise
    finally:
        if os.path.exists(STATE):
            rollback(host)  # the journal's originals: run and pages_to_scan as they were
        for name, value in saved.items():
            if read(f"{KSM}/{name}") != value:
                with open(f"{KSM}/{name}", "w") as f:
                    f.write(value)
    assert ksm_state() == saved and not os.path.exists(STATE)
