"""What kvm.modules says of the KVM options that matter to pinned guests. Pure: facts in.

- nx_huge_pages: the iTLB-multihit mitigation splits guests' executable huge pages; under
  every isolated CPU at once that cost ~100 us spikes under oslat (redhat-performance/tuned
  commit e4a0e48, realtime-virtual-host). The pinned profile sets kvm.nx_huge_pages=never.
- halt_poll_ns: how long a halting vCPU polls before the host schedules away
  (Documentation/virt/kvm/halt-polling.rst); the pinned profile sets 400000.
- the LAPIC timer advance (kvm.lapic_timer_advance, a bool, on current kernels;
  lapic_timer_advance_ns, -1 adaptive, on older ones): tuned's realtime-virtual-host
  calibrated lapic_timer_advance_ns by booting a tscdeadline_latency guest at 1000..7000 ns
  until the latency stopped falling, and dropped it in 2020 (commit 51c50a3: 3-4 us gained,
  fragile); KVM's adaptive tuning does it per vCPU. Reported, not set.
- split-lock detection: a guest's split locks trap into the host (#AC) and throttle it
  (lf-edge/eve PR #3611); the pinned profile sets split_lock_detect=off.
"""

from __future__ import annotations

from kvmtune.grammar import digits


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().upper() in ("Y", "1", "FORCE", "ON")


def pinned_notes(params: dict, cmdline, cpu) -> tuple[list[str], dict]:
    """(short clauses for the detail, the meaning of each for the data)."""
    short, meaning = [], {}
    nx = params.get("nx_huge_pages")
    if nx is not None:
        on = _flag(nx)
        short.append(f"nx_huge_pages={nx}")
        meaning["nx_huge_pages"] = (
            "executable guest huge pages are split (iTLB-multihit mitigation): ~100 us spikes on isolated "
            "CPUs; pinned sets kvm.nx_huge_pages=never" if on else
            "no splitting of guest huge pages: right for pinned guests (trusted guests only on a CPU with "
            "iTLB multihit)")
    poll = params.get("halt_poll_ns")
    if poll is not None and digits(poll.strip()):
        ns = int(poll)
        short.append(f"halt polling {ns // 1000} us" if ns else "halt polling off")
        meaning["halt_poll_ns"] = (
            f"a halting vCPU polls up to {ns // 1000} us before the host schedules away; on its own isolated "
            "CPU that costs only power" if ns else
            "every vCPU wake-up goes through the host scheduler; pinned sets kvm.halt_poll_ns=400000")
    advance = params.get("lapic_timer_advance", params.get("lapic_timer_advance_ns"))
    if advance is not None:
        adaptive = advance.strip() in ("Y", "-1")
        short.append("LAPIC timer advance " + ("adaptive" if adaptive else advance.strip()))
        meaning["lapic_timer_advance"] = (
            ("KVM fires a guest's TSC-deadline timer early by an amount it tunes per vCPU" if adaptive else
             "fixed or off") + "; tuned once calibrated lapic_timer_advance_ns with a tscdeadline_latency "
            "guest (1000-7000 ns, dropped in tuned commit 51c50a3: 3-4 us gained)")
    args = dict(cmdline or ())
    if cpu is not None and "split_lock_detect" in cpu.flags:
        mode = args.get("split_lock_detect") or "warn"
        short.append(f"split-lock detection {mode}")
        meaning["split_lock_detect"] = (
            "a guest's split locks trap into the host (#AC) and throttle it (lf-edge/eve PR #3611); pinned sets "
            "split_lock_detect=off" if mode != "off" else "off: a guest's split locks do not trap into the host")
    return short, meaning
