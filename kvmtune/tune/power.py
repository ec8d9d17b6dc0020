"""CPU power policy: governor and EPP per cpufreq policy, boost, and a wake-up latency limit per
CPU (pm_qos_resume_latency_us, which holds without a daemon keeping /dev/cpu_dma_latency open,
unlike tuned's). Where cpufreq is absent (a VM) the settings are skipped with a warning."""

from __future__ import annotations

from kvmtune.tune.knob import KnobChange
from kvmtune.tune.registry import Field, integer, kind, one_of
from kvmtune.tune.sections import section

CPU_DIR = "sys/devices/system/cpu"
PATHS = {
    "governor": CPU_DIR + "/cpufreq/policy{}/scaling_governor",
    "energy_performance_preference": CPU_DIR + "/cpufreq/policy{}/energy_performance_preference",
    "boost": CPU_DIR + "/cpufreq/boost",
    "no_turbo": CPU_DIR + "/intel_pstate/no_turbo",
    "latency": CPU_DIR + "/cpu{}/power/pm_qos_resume_latency_us",
}
INDEXED = ("governor", "energy_performance_preference", "latency")


@kind
class PowerChange(KnobChange):
    KIND, ORDER = "power", 80
    FIELDS = (Field("knob", one_of(PATHS), "one kvmtune sets"),
              Field("index", integer(0, 1 << 16, optional=True), "a policy or CPU number"))
    __slots__ = ("knob", "index")

    def __init__(self, knob: str, index: int | None, before, after, status=None, detail=""):
        self.knob, self.index = knob, index
        super().__init__(before, after, status, detail)

    rel = property(lambda self: PATHS[self.knob].format(self.index))
    target = property(lambda self: f"power {self.knob}" + (f" {self.index}" if self.index is not None else ""))

    @classmethod
    def parse_identity(cls, record: dict) -> dict:
        identity = super().parse_identity(record)
        if (identity["knob"] in INDEXED) != (identity["index"] is not None):  # a policy's knob, or the host's
            raise ValueError(f"power {identity['knob']} " + ("needs a policy or CPU number" if identity["knob"]
                                                             in INDEXED else "takes no index"))
        return identity


def plan_power(profile, facts, warnings: list[str]) -> list[PowerChange]:
    if not profile.power:
        return []
    power = facts.power
    changes: list[PowerChange] = []
    for key in ("governor", "energy_performance_preference"):
        if key not in profile.power:
            continue
        value, node = profile.power[key]
        if not power.policies:
            warnings.append(f"power.{key}: no cpufreq on this host (usual in a VM): not set")
            continue
        for name, _, _, governor, epp, available in power.policies:
            index = int(name[len("policy"):])
            current = governor if key == "governor" else epp
            if current is None:
                warnings.append(f"power.{key}: {name} has no {key} file: not set there")
                continue
            if key == "governor" and available and value not in available:
                raise node.error(f"{name} offers {', '.join(available)}, not {value!r}")
            changes.append(PowerChange(key, index, current, value))
    if "boost" in profile.power:
        value, node = profile.power["boost"]
        if facts.boost_knob is None:
            warnings.append("power.boost: no cpufreq boost or intel_pstate no_turbo here: not set")
        else:
            knob, current = facts.boost_knob
            wanted = ("1" if value else "0") if knob == "boost" else ("0" if value else "1")
            changes.append(PowerChange(knob, None, current, wanted))
    if "max_wakeup_latency_us" in profile.power:
        value, node = profile.power["max_wakeup_latency_us"]
        if not facts.resume_latency:
            warnings.append("power.max_wakeup_latency_us: no per-CPU pm_qos_resume_latency_us here: not set")
        for cpu, current in sorted(facts.resume_latency.items()):
            changes.append(PowerChange("latency", cpu, current, str(value)))
    return changes


def _read(host, profile, persist: bool, out: dict) -> None:
    if not profile.power:
        return
    from kvmtune.probe.power import read_power
    from kvmtune.tune.facts import online_cpus, strip

    online = online_cpus(host, out)
    out["power"] = read_power(host, list(out.get("cmdline", ())))
    boost = None
    for knob in ("boost", "no_turbo"):
        value = strip(host.read_optional(PATHS[knob]))
        if value is not None:
            boost = (knob, value)
            break
    out["boost_knob"] = boost
    latency = {}
    for cpu in online:
        value = strip(host.read_optional(PATHS["latency"].format(cpu)))
        if value is not None:
            latency[cpu] = value
    out["resume_latency"] = latency


section("power", order=80, reads=_read, plan=lambda profile, facts, ctx: plan_power(profile, facts, ctx.warnings))
