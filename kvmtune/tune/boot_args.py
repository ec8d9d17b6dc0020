"""The boot section: kernel arguments that keep isolated CPUs quiet, judged against this host.

The arguments go onto the command line through the same files as the CPU split's
(tune.persist: the BLS entries or kvmtune's GRUB drop-in), so plan, diff, verify and
rollback are those files' and the change is pending a reboot; check's kernel.cmdline says
when the running kernel has them. Where tuned sets each (redhat-performance/tuned):
- nosoftlockup: profiles/realtime/tuned.conf and profiles/cpu-partitioning/tuned.conf
  (cmdline_realtime, cmdline_cpu_part): the soft-lockup watchdog's hrtimer fires on every CPU;
- skew_tick=1, tsc=reliable: profiles/network-latency/tuned.conf (cmdline_network_latency),
  which both real-time profiles include: ticks of different CPUs no longer fire at the same
  instant and contend on jiffies_lock; no clocksource watchdog timer on any CPU;
- nmi_watchdog=0: tuned sets only the sysctl kernel.nmi_watchdog=0 (network-latency); the
  argument keeps the perf NMI from ever being armed during boot;
- intel_pstate=disable: profiles/cpu-partitioning/tuned.conf, and profiles/realtime/tuned.conf
  only on a GenuineIntel CPU (``${f:cpuinfo_check:GenuineIntel:intel_pstate=disable:...}``):
  kvmtune does the same, leaving it out elsewhere with a warning;
- kvm.nx_huge_pages: profiles/realtime-virtual-host/script.sh writes ``kvm nx_huge_pages=0``
  to modprobe.d (tuned commit e4a0e48: oslat saw ~100 us spikes as the mitigation split huge
  pages under every isolated CPU at once); a boot argument also reaches a kvm built in;
- split_lock_detect=: not in tuned; lf-edge/eve PR #3611 turned it off because a guest's split
  locks trap into the host (#AC) and flood it, throttling the whole machine.
"""

from __future__ import annotations

from kvmtune.tune.sections import section

INVARIANT_TSC = ("constant_tsc", "nonstop_tsc")
ITLB = "sys/devices/system/cpu/vulnerabilities/itlb_multihit"


def plan_boot_args(boot: dict, cpu, itlb_multihit: str | None, warnings: list[str]) -> list[str]:
    """The command-line words of the profile's boot section that fit this host, in its order."""
    from kvmtune.profile.schema_boot import argument

    out = []
    for name, (value, _) in boot.items():
        word = argument(name, value)
        if name == "intel_pstate" and (cpu is None or cpu.vendor != "GenuineIntel"):
            # tuned's realtime profile picks intel_pstate= only on GenuineIntel (cpuinfo_check).
            warnings.append(f"boot.intel_pstate: not an Intel CPU here ({getattr(cpu, 'vendor', None) or 'unknown'}): "
                            f"{word} is left out")
            continue
        if name == "tsc" and value == "reliable" and not (cpu and all(f in cpu.flags for f in INVARIANT_TSC)):
            # tsc=reliable turns the clocksource watchdog off: without an invariant TSC that
            # watchdog is what moves the clock off a TSC that drifts or stops in deep idle.
            warnings.append("boot.tsc: this CPU does not report an invariant TSC (constant_tsc nonstop_tsc): "
                            "tsc=reliable would turn off the watchdog that guards the clock; left out")
            continue
        if name == "kvm.nx_huge_pages" and value in ("never", "off") and itlb_multihit \
                and not itlb_multihit.startswith("Not affected"):
            # The trade-off tuned's realtime-virtual-host accepts: on a CPU with the iTLB
            # multihit erratum a guest may map executable huge pages and machine-check the
            # host; with the mitigation off, only trusted guests belong on this host.
            warnings.append(f"boot.kvm.nx_huge_pages: this CPU has iTLB multihit ({itlb_multihit}): with "
                            f"{word} a malicious guest can machine-check the host; run trusted guests only")
        out.append(word)
    return out


def _read(host, profile, persist: bool, out: dict) -> None:
    if not profile.boot:
        return
    from kvmtune.probe.cpu import read_cpu
    from kvmtune.tune.facts import strip

    out["cpu"] = read_cpu(host)
    out["itlb_multihit"] = strip(host.read_optional(ITLB))


def _plan(profile, facts, ctx) -> list:
    # The words join the CPU split's on the command line (tune.persist, planned last).
    words = plan_boot_args(profile.boot, facts.cpu, facts.itlb_multihit, ctx.warnings) if profile.boot else []
    if words:
        ctx.shared.setdefault("boot_groups", []).append(("quiet CPUs (boot section)", words))
    return []


section("boot", order=86, reads=_read, plan=_plan)
