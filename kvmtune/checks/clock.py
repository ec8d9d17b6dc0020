"""clock and clock.tsc: the clocksource, the invariant TSC, and the TSC a migrating guest keeps;
and the ``host.migration`` facts made of them (pure functions of facts, no host access).

A guest with an invariant TSC reads the TSC directly; after a live migration it reads the
destination's. Linux marks a TSC unstable when its clocksource watchdog sees it drift
(kernel/time/clocksource.c), and then a guest's kvmclock loses its stable bit. KubeVirt
tolerates a 250 ppm frequency difference between hosts (kubevirt PR #5654); beyond it only
TSC scaling (VMX secondary control 25, AMD's tsc_scale) keeps the guest's frequency.
"""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, UNKNOWN, WARN, Check

# Clocksources that read a per-CPU counter without a trap: any other is slow or a fallback.
FAST = ("tsc", "kvm-clock", "hyperv_clocksource_tsc_page", "arch_sys_counter", "timebase", "tod")
OFF = ("N", "n", "0")


def check_clock(facts: Facts) -> Check:
    title = TITLES["clock"]
    clock = facts.clock
    data = clock.to_json()
    where = (f"clocksource {clock.current} (available: {' '.join(clock.available) or 'none listed'})"
             if clock.current else "clocksource unknown (no /sys/devices/system/clocksource)")
    log = "" if clock.log_read else "; the kernel log was not read, so watchdog lines are not judged"
    if clock.unstable:
        return Check("clock", WARN, title, f"{where}; the kernel marked a clocksource unstable: "
                     f"{clock.unstable[-1]}", "A TSC the watchdog distrusts makes guests' clocks jump and "
                     "keeps them from migrating: check the firmware's power settings (C-states, "
                     "TSC sync across sockets) and the kernel log around the line shown.", data)
    if clock.invariant_tsc is False:
        return Check("clock", WARN, title, f"{where}; no invariant TSC (constant_tsc and nonstop_tsc "
                     f"are not both in the CPU flags){log}", "Guests on this host cannot rely on the TSC "
                     "(nor migrate with an invariant TSC): a CPU without it cannot be fixed by tuning.", data)
    tsc = "; invariant TSC" if clock.invariant_tsc else ""
    if clock.current is None:
        why = "; ".join(clock.problems) or "no clocksource in sysfs"
        return Check("clock", UNKNOWN, title, f"could not read the clocksource: {why}{tsc}{log}", None, data)
    if clock.current not in FAST:
        return Check("clock", INFO, title, f"{where}{tsc}: {clock.current} is slow to read{log}",
                     "If the TSC is listed, choose it: clocksource=tsc on the kernel command line "
                     "(reboot needed), or echo tsc > /sys/devices/system/clocksource/clocksource0/"
                     "current_clocksource now.", data)
    return Check("clock", PASS, title, f"{where}{tsc}{log}", None, data)


def check_clock_tsc(facts: Facts) -> Check:
    """What the migration intent warns on: a TSC frequency the kernel measured rather than
    knew, and kvmclock's periodic sync off without tsc=reliable."""
    title = TITLES["clock.tsc"]
    clock = facts.clock
    kvm = facts.known("kvm")
    khz, source = tsc_frequency(clock, kvm)
    data = {"tsc_khz": khz, "tsc_source": source, "known_freq": clock.known_freq,
            "log_khz": clock.log_khz, "log_kind": clock.log_kind}
    if clock.known_freq is None:
        return Check("clock.tsc", INFO, title, "no x86 TSC flags to judge (the TSC is x86's)", None, data)
    warnings, hints = [], []
    if not clock.known_freq:
        how = {"refined": "refined against another timer", "detected": "measured at boot"}.get(
            clock.log_kind or "", "measured at boot")
        warnings.append(f"the TSC frequency was {how}, not known (no tsc_known_freq flag): it differs "
                        "between boots and hosts by some ppm")
        hints.append("Keep migration pools to hosts whose tsc_khz agree within 250 ppm, or that all "
                      "have TSC scaling (see kvmtune migration).")
    modules = facts.known("modules")
    kvm_module = modules.get("kvm") if modules is not None else None
    sync = kvm_module.params.get("kvmclock_periodic_sync") if kvm_module is not None else None
    data["kvmclock_periodic_sync"] = sync
    reliable = ("tsc", "reliable") in (facts.known("cmdline") or [])
    if sync in OFF and not reliable:
        warnings.append("kvm.kvmclock_periodic_sync=0 without tsc=reliable: guests' kvmclock is no "
                        "longer resynchronised with a TSC the kernel may still distrust")
        hints.append("Leave kvm.kvmclock_periodic_sync at its default (Y), or boot with tsc=reliable "
                     "where the TSC is known good.")
    frequency = f"TSC {khz / 1000:.3f} MHz from {source}" if khz else "TSC frequency unknown"
    if warnings:
        return Check("clock.tsc", WARN, title, f"{frequency}; " + "; ".join(warnings), " ".join(hints), data)
    return Check("clock.tsc", PASS, title, f"{frequency}; the kernel knew the frequency (tsc_known_freq)",
                 None, data)


def tsc_frequency(clock, kvm) -> tuple[int | None, str | None]:
    from kvmtune.probe.clock import tsc_frequency as pick

    return pick(clock, kvm.probe.tsc_khz if kvm is not None and hasattr(kvm.probe, "tsc_khz") else None)


def migration_facts(known) -> dict:
    """``host.migration``, from facts already read (``known(name)``: a value or None). The
    versions come from the ``packages`` fact when this run read it (``--for migration``,
    ``--format nfd``, snapshot); QEMU's otherwise from ``host.qemu``'s package."""
    clock, kvm, cpu, packages = known("clock"), known("kvm"), known("cpu"), known("packages")
    khz, source = tsc_frequency(clock, kvm)
    scaling = kvm.tsc_scaling if kvm is not None and kvm.tsc_scaling is not None else None
    if scaling is None and clock is not None:
        scaling = clock.scaling_flags
    qemu = packages.qemu if packages is not None else None
    if qemu is None and known("qemu") is not None:
        from kvmtune.probe.packages import upstream_version

        qemu = upstream_version(known("qemu").version)
    return {
        "tsc_khz": khz, "tsc_source": source,
        "invariant_tsc": clock.invariant_tsc if clock is not None else None,
        "tsc_scaling": scaling,
        "clocksource": clock.current if clock is not None else None,
        "microcode": cpu.microcode if cpu is not None else None,
        "kernel": known("kernel"),
        "qemu": qemu,
        "libvirt": packages.libvirt if packages is not None else None,
        "machine_types": list(packages.machine_types) if packages is not None else [],
    }
