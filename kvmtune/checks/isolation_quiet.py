"""What cpu.isolation judges beyond the split: how quiet the isolated CPUs are kept, and what
the ``pinned`` intent requires in effect. Pure: facts in, findings out.

The settings are tuned's (redhat-performance/tuned, profiles/network-latency, realtime,
cpu-partitioning and realtime-virtual-host, tuned.conf each; kvmtune.tune.boot_args names
each one's file). ``pinned`` asks of the running kernel, not its configuration: the tick
and RCU callbacks off the isolated CPUs (/sys/devices/system/cpu/nohz_full; an rcuop/N
kthread per CPU), no IRQ on them, huge pages on every node they sit on, KSM off, and no
idle state slower to leave than the pinned profile's power.max_wakeup_latency_us.
"""

from __future__ import annotations

from kvmtune.probe.parse import format_cpulist

PINNED_WAKEUP_US = 20  # profiles/pinned.yaml power.max_wakeup_latency_us (a test holds them equal)
SHOWN = 5


def _cpus(cpus) -> str:
    return format_cpulist(sorted(cpus))


def _some(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def quiet_gaps(iso, isolated: set[int], cmdline) -> tuple[list[str], list[str]]:
    """(problems, notes) of the settings that keep housekeeping work off isolated CPUs."""
    args = dict(cmdline or ())
    problems, notes = [], []
    if iso.writeback is not None and set(iso.writeback) & isolated:
        problems.append(f"writeback may run on isolated CPUs: the writeback workqueue's cpumask is "
                        f"{_cpus(iso.writeback)}")
    if iso.kthreads:
        problems.append(f"{len(iso.kthreads)} movable kernel threads may run on isolated CPUs: "
                        + _some([f"{name} ({pid})" for pid, name, _ in iso.kthreads]))
    sysctl = iso.sysctls
    if _int(sysctl.get("kernel.timer_migration")) == 1:
        problems.append("kernel.timer_migration=1: timers may migrate onto isolated CPUs")
    if _int(sysctl.get("kernel.nmi_watchdog")) not in (None, 0) and args.get("nmi_watchdog") != "0":
        problems.append("the NMI watchdog interrupts every CPU (kernel.nmi_watchdog=1, no nmi_watchdog=0)")
    stat = _int(sysctl.get("vm.stat_interval"))
    if stat is not None and stat < 10:
        problems.append(f"vm.stat_interval={stat}: per-CPU VM statistics are folded every {stat} s (tuned: 10)")
    missing = [w for w in ("nosoftlockup", "skew_tick") if w not in args]
    if missing:
        problems.append(f"{' and '.join(missing)} not on the command line (tuned's real-time profiles set them)")
    if _int(sysctl.get("kernel.sched_rt_runtime_us")) == -1:
        notes.append("RT throttling off (kernel.sched_rt_runtime_us=-1): a runaway SCHED_FIFO vCPU thread can "
                     "starve its CPU's kernel threads")
    return problems, notes


def pinned_gaps(facts, iso, isolated: set[int]) -> list[str]:
    """What the pinned intent requires and the running host lacks (empty: ready for it)."""
    if not isolated:  # nothing to keep quiet; still name what else pinned guests would lack
        return ["isolated CPUs with the tick, RCU callbacks and IRQs kept off them"] + _memory_gaps(facts, isolated) \
            + _idle_gaps(facts, isolated)
    gaps = []
    tickless = set(iso.nohz_full)
    if isolated - tickless:
        why = ("nohz_full= is on the command line but not in effect (a kernel without CONFIG_NO_HZ_FULL?)"
               if "nohz_full" in iso.args else "no nohz_full= on the command line")
        gaps.append(f"the tick still runs on CPUs {_cpus(isolated - tickless)} "
                    f"(/sys/devices/system/cpu/nohz_full is '{_cpus(tickless)}': {why})")
    if iso.rcu_offloaded is not None and isolated - set(iso.rcu_offloaded):
        why = "rcu_nocbs= is on the command line but" if "rcu_nocbs" in iso.args else "no rcu_nocbs=;"
        gaps.append(f"RCU callbacks still run on CPUs {_cpus(isolated - set(iso.rcu_offloaded))} ({why} "
                    "no rcuop kthread takes them)")
    if iso.irqs:
        gaps.append("IRQs on isolated CPUs: " + _some([f"{i}" + (f" ({n})" if n else "") for i, n, _ in iso.irqs]))
    return gaps + _memory_gaps(facts, isolated) + _idle_gaps(facts, isolated)


def _idle_gaps(facts, isolated: set[int]) -> list[str]:
    power = facts.known("power")
    if power is None:
        return []
    cpus = isolated or set(power.resume_latency)
    limits = [_int(power.resume_latency.get(cpu)) for cpu in cpus]
    limited = bool(limits) and all(v is not None and 0 < v <= PINNED_WAKEUP_US for v in limits)
    slow = [f"{name} ({lat} us)" for name, lat, disabled in power.idle_states
            if lat is not None and lat > PINNED_WAKEUP_US and not disabled]
    if slow and not limited:
        return [f"idle states slower than pinned's {PINNED_WAKEUP_US} us to leave: {', '.join(slow)} "
                f"(no PM QoS resume latency limit on the {'isolated ' if isolated else ''}CPUs)"]
    return []


def _memory_gaps(facts, isolated: set[int]) -> list[str]:
    gaps = []
    hugepages, numa = facts.known("hugepages"), facts.known("numa")
    if hugepages is not None:
        nodes = [n.id for n in (numa.nodes if numa else ()) if set(n.cpus) & isolated]
        if not isolated or not nodes:  # nothing isolated, or no NUMA facts: any pool at all
            if not any(p.total for p in hugepages.pools):
                gaps.append("no huge pages reserved on any node")
        else:
            bare = [n for n in nodes if not any((p.nodes.get(n) or {}).get("total") for p in hugepages.pools)]
            if bare:
                gaps.append(f"no huge pages reserved on node{'s' if len(bare) > 1 else ''} "
                            f"{', '.join(map(str, bare))}, where isolated CPUs are")
    ksm = facts.known("ksm")
    if ksm is not None and str(ksm.values.get("run")) == "1":
        gaps.append("KSM is running (/sys/kernel/mm/ksm/run is 1): merging and unmerging stall pinned guests")
    return gaps
