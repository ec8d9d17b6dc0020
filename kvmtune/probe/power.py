"""CPU frequency and idle state policy: what decides how fast a guest's vCPU wakes and runs.

cpufreq per policy (driver, governor, energy_performance_preference), boost, cpuidle
(driver, the states of CPU 0 with their exit latency and whether they are disabled),
the PM QoS resume latency of CPU 0 and of the isolated CPUs (reading it for every CPU
of a 1024-CPU host would cost check more than the rest of it), and the boot arguments
that cap C-states. In a VM there is usually no cpufreq and no cpuidle: that is a fact
to report, not a failure.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe import parse
from kvmtune.probe.system import cmdline_values
from kvmtune.record import record
from kvmtune.grammar import digits

CPU_DIR = "sys/devices/system/cpu"
FREQ_DIR = f"{CPU_DIR}/cpufreq"
ARGS = ("intel_idle.max_cstate", "processor.max_cstate", "idle", "intel_pstate", "cpufreq.off")


@record
class PowerFacts:
    policies: tuple  # (policy, CPUs, driver, governor, epp, available governors)
    boost: bool | None  # turbo/boost allowed
    idle_driver: str | None
    idle_states: tuple  # (name, exit latency in us, disabled on CPU 0)
    resume_latency: dict  # CPU -> pm_qos_resume_latency_us ("n/a" or a number, 0 = no limit)
    args: dict
    problems: tuple = ()

    def to_json(self) -> dict:
        return {
            "cpufreq": [{"policy": p, "cpus": parse.format_cpulist(list(c)), "driver": d, "governor": g,
                         "energy_performance_preference": e, "available_governors": list(a)}
                        for p, c, d, g, e, a in self.policies],
            "boost": self.boost,
            "cpuidle": {"driver": self.idle_driver,
                        "states": [{"name": n, "latency_us": l, "disabled": d} for n, l, d in self.idle_states]},
            "pm_qos_resume_latency_us": {str(k): v for k, v in sorted(self.resume_latency.items())},
            "cmdline": dict(self.args),
            "problems": list(self.problems),
        }


def read_power(host, cmdline: list[tuple[str, str | None]], isolated: tuple[int, ...] = ()) -> PowerFacts:
    problems: list[str] = []

    def text(rel: str) -> str | None:
        try:
            value = host.read_optional(rel)
        except HostError as exc:
            problems.append(f"/{rel}: {exc.reason}")
            return None
        return value.strip() if value is not None else None

    policies = []
    for entry in host.listdir(FREQ_DIR):
        if not entry.startswith("policy") or not digits(entry[6:]):
            continue
        base = f"{FREQ_DIR}/{entry}"
        try:
            cpus = tuple(parse.cpulist(text(f"{base}/affected_cpus") or text(f"{base}/related_cpus") or ""))
        except ValueError:
            cpus = ()
        policies.append((entry, cpus, text(f"{base}/scaling_driver"), text(f"{base}/scaling_governor"),
                         text(f"{base}/energy_performance_preference"),
                         tuple((text(f"{base}/scaling_available_governors") or "").split())))
    boost = None
    value = text(f"{FREQ_DIR}/boost")
    if value in ("0", "1"):
        boost = value == "1"
    else:
        no_turbo = text(f"{CPU_DIR}/intel_pstate/no_turbo")
        if no_turbo in ("0", "1"):
            boost = no_turbo == "0"
    states = []
    idle_base = f"{CPU_DIR}/cpu0/cpuidle"
    for entry in sorted(host.listdir(idle_base), key=lambda e: int(e[5:]) if digits(e[5:]) else 0):
        if not entry.startswith("state"):
            continue
        latency = text(f"{idle_base}/{entry}/latency")
        states.append((text(f"{idle_base}/{entry}/name") or entry, int(latency) if latency and digits(latency) else None,
                       text(f"{idle_base}/{entry}/disable") == "1"))
    resume = {}
    for cpu in sorted({0, *isolated})[:256]:
        value = text(f"{CPU_DIR}/cpu{cpu}/power/pm_qos_resume_latency_us")
        if value is not None:
            resume[cpu] = int(value) if digits(value) else value
    args = {name: (cmdline_values(cmdline, name) or [None])[-1] for name in ARGS if cmdline_values(cmdline, name)}
    driver = text(f"{CPU_DIR}/cpuidle/current_driver")
    return PowerFacts(tuple(policies), boost, None if driver == "none" else driver, tuple(states), resume,
                      args, tuple(problems))
