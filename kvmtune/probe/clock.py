"""The host's clock as a migrating guest meets it: clocksource, TSC, its frequency and its scaling.

One reader serves the ``clock`` check, the ``migration`` intent and ``host.migration``. It
reads two sysfs files and, on a live host, the kernel log's TSC and clocksource lines; the
TSC frequency KVM itself reports (``KVM_GET_TSC_KHZ``) comes from the probe VM that
kvm.functional already runs (kvmtune.probe.kvm_ioctl), so nothing here opens /dev/kvm.

A snapshot holds no kernel log (kvmtune.snapshot never copies it); it keeps only the lines
this reader kept, in ``kvmtune-kernel-log`` at the tree's top, so a snapshot judges the same
lines the live host showed.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.grammar import digits
from kvmtune.record import record

CLOCKSOURCE = "sys/devices/system/clocksource/clocksource0"
SNAPSHOT_LOG = "kvmtune-kernel-log"
# arch/x86/kernel/tsc.c: the frequency the kernel settled on. "Refined" follows a
# calibration against HPET or the PM timer (tsc_refine_calibration_work), "Detected" is
# the early value (from CPUID 0x15/0x16, MSRs or the hypervisor when the frequency is
# known, else a quick PIT calibration).
REFINED = "tsc: Refined TSC clocksource calibration: "
DETECTED = "tsc: Detected "


@record
class ClockFacts:
    current: str | None  # current_clocksource
    available: tuple[str, ...]  # available_clocksource
    invariant_tsc: bool | None  # constant_tsc and nonstop_tsc; None: not x86, or no flags read
    known_freq: bool | None  # tsc_known_freq: the kernel took the frequency, it did not measure it
    log_khz: int | None  # the kernel log's frequency
    log_kind: str | None  # "refined" or "detected"
    unstable: tuple[str, ...]  # clocksource-watchdog and "TSC unstable" lines
    log_read: bool  # False: no kernel log was there to read (a snapshot without one, or refused)
    kept: tuple[str, ...]  # the lines this reader used, for a snapshot to keep
    cpuinfo_khz: int | None  # the frequency in the model name (Intel: "@ 2.60GHz"), else cpu MHz
    scaling_flags: bool | None  # TSC scaling as cpuinfo shows it (AMD tsc_scale; Intel's vmx flags line)
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"current": self.current, "available": list(self.available), "invariant_tsc": self.invariant_tsc,
                "known_freq": self.known_freq, "log_khz": self.log_khz, "log_kind": self.log_kind,
                "unstable": list(self.unstable), "log_read": self.log_read}


def parse_log(lines) -> tuple[int | None, str | None, tuple[str, ...], tuple[str, ...]]:
    """(kHz, "refined"/"detected", unstable lines, kept lines) from kernel log messages.
    A refined calibration wins over the early value; the last of each counts (a log that
    wrapped keeps the newest)."""
    refined = detected = None
    unstable, kept = [], []
    for line in lines:
        lower = line.lower()
        if line.startswith(REFINED):
            refined = _mhz_to_khz(line[len(REFINED):].split()[0])
            kept.append(line)
        elif line.startswith(DETECTED) and "MHz" in line:
            detected = _mhz_to_khz(line[len(DETECTED):].split()[0])
            kept.append(line)
        elif "unstable" in lower and ("clocksource" in lower or "tsc" in lower):
            # "clocksource: Marking clocksource 'tsc' as unstable because the skew is too large",
            # "tsc: Marking TSC unstable due to clocksource watchdog" (kernel/time/clocksource.c)
            unstable.append(line)
            kept.append(line)
        elif lower.startswith("clocksource:") and any(w in lower for w in ("watchdog", "skew", "wd_", "cs_")):
            kept.append(line)  # the watchdog's evidence lines that follow an unstable verdict
    if refined is not None:
        return refined, "refined", tuple(unstable), tuple(kept)
    if detected is not None:
        return detected, "detected", tuple(unstable), tuple(kept)
    return None, None, tuple(unstable), tuple(kept)


def _mhz_to_khz(text: str) -> int | None:
    whole, _, frac = text.partition(".")
    if not digits(whole) or (frac and not digits(frac)):
        return None
    return int(whole) * 1000 + int((frac + "000")[:3])


def cpuinfo_khz(model_name: str | None, cpu_mhz: str | None) -> int | None:
    """Intel prints the nominal frequency (the TSC's, on constant_tsc CPUs) in the model name,
    ``... CPU @ 2.60GHz``; otherwise ``cpu MHz``, the first CPU's frequency when it was read."""
    if model_name and "@ " in model_name and model_name.endswith("GHz"):
        value = model_name.rsplit("@ ", 1)[1][:-3].strip()
        khz = _mhz_to_khz(value)
        if khz is not None:
            return khz * 1000
    return _mhz_to_khz(cpu_mhz.strip()) if cpu_mhz else None


def scaling_from_flags(cpu) -> bool | None:
    """TSC scaling as cpuinfo shows it: AMD's tsc_scale flag; on Intel the "vmx flags" line
    (Linux >= 5.8) lists tsc_scaling. None where cpuinfo cannot say."""
    if cpu is None or cpu.arch != "x86_64" or not cpu.flags:
        return None
    if cpu.vendor in ("AuthenticAMD", "HygonGenuine"):
        return cpu.has("tsc_scale")
    if cpu.vmx_flags is not None:
        return "tsc_scaling" in cpu.vmx_flags
    return None


def parse_clocksource(text: str | None) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


def read_clock(host, cpu) -> ClockFacts:
    """The clocksource from sysfs, the TSC's flags from ``cpu`` (already read), and the kernel
    log's lines: the live ring buffer, or the lines a snapshot kept."""
    problems: list[str] = []
    current = available = None
    try:
        current = host.read_optional(f"{CLOCKSOURCE}/current_clocksource")
        available = host.read_optional(f"{CLOCKSOURCE}/available_clocksource")
    except HostError as exc:  # unreadable: the clock check says what was not read
        problems.append(f"/{exc.rel}: {exc.reason}")
    if host.live:
        lines = host.kernel_log()
        log_read = bool(lines)
    else:
        text = host.read_optional(SNAPSHOT_LOG)
        lines, log_read = (text.splitlines(), True) if text is not None else ([], False)
    khz, kind, unstable, kept = parse_log(lines)
    x86 = cpu is not None and cpu.arch == "x86_64" and bool(cpu.flags)
    return ClockFacts(
        current=(current.strip() or None) if current else None,
        available=parse_clocksource(available),
        invariant_tsc=(cpu.has("constant_tsc") and cpu.has("nonstop_tsc")) if x86 else None,
        known_freq=cpu.has("tsc_known_freq") if x86 else None,
        log_khz=khz, log_kind=kind, unstable=unstable, log_read=log_read, kept=kept,
        cpuinfo_khz=cpuinfo_khz(cpu.model_name, cpu.cpu_mhz) if x86 else None,
        scaling_flags=scaling_from_flags(cpu),
        problems=tuple(problems),
    )


def tsc_frequency(clock: ClockFacts | None, kvm_khz: int | None) -> tuple[int | None, str | None]:
    """(kHz, source): KVM's own answer, else the kernel log's, else cpuinfo's."""
    if kvm_khz:
        return kvm_khz, "kvm"
    if clock is None:
        return None, None
    if clock.log_khz:
        return clock.log_khz, "kernel-log"
    if clock.cpuinfo_khz:
        return clock.cpuinfo_khz, "cpuinfo"
    return None, None
