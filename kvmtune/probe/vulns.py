"""CPU vulnerability states (/sys/devices/system/cpu/vulnerabilities) and SMT."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host

VULN_DIR = "sys/devices/system/cpu/vulnerabilities"
SMT_DIR = "sys/devices/system/cpu/smt"


@record
class VulnFacts:
    states: dict[str, str]  # file name -> the kernel's one-line state
    smt_control: str | None  # on / off / forceoff / notsupported / notimplemented
    smt_active: bool | None
    problems: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"states": dict(self.states), "smt_control": self.smt_control,
                "smt_active": self.smt_active}


def read_vulns(host: Host) -> VulnFacts:
    states = {}
    problems = []
    for name in host.listdir(VULN_DIR):
        try:
            states[name] = host.read(f"{VULN_DIR}/{name}").strip()
        except HostError as exc:
            problems.append(f"/{VULN_DIR}/{name}: {exc.reason}")
    control = active = None
    try:
        control = (host.read_optional(f"{SMT_DIR}/control") or "").strip() or None
        active_text = host.read_optional(f"{SMT_DIR}/active")
        active = None if active_text is None else active_text.strip() == "1"
    except HostError as exc:
        problems.append(f"/{exc.rel}: {exc.reason}")
    return VulnFacts(states, control, active, tuple(problems))
