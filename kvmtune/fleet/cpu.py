"""Named CPU models per host, for migration: judged once per distinct CPU and QEMU, as
cpu-models and cpu-baseline judge them (a fleet is mostly identical machines)."""

from __future__ import annotations

from kvmtune.cpumodels.qemu import from_version, startable
from kvmtune.cpumodels.verdict import USABLE, evaluate, extra_features, present_features, source_from_facts


def _key(cpu: dict) -> tuple:
    features = cpu.get("kvm_features")
    if isinstance(features, list):
        return ("kvm", tuple(features))
    bugs = cpu.get("bugs")
    return ("cpuinfo", tuple(cpu.get("flags") or ()), None if bugs is None else tuple(bugs))


class Models:
    def __init__(self):
        self._verdicts: dict[tuple, tuple] = {}
        self._qemu: dict[tuple, object] = {}

    def _judged(self, host) -> tuple:
        key = _key(host.cpu)
        if key not in self._verdicts:
            source = source_from_facts(host.cpu)
            self._verdicts[key] = (source, {v.name: v for v in evaluate(source)})
        return self._verdicts[key]

    def qemu(self, host):
        q = host.facts["qemu"] or {}
        key = (q.get("installed"), q.get("series"))
        if key not in self._qemu:
            self._qemu[key] = from_version(*key)
        return self._qemu[key]

    def missing(self, host, model: str) -> list[str]:
        """Why the host cannot give ``model`` to a guest ([] when it can), in the words
        migration prints: "lacks avx512bw for Cascadelake-Server-v5"."""
        source, verdicts = self._judged(host)
        v = verdicts[model]
        why = []
        if v.missing:
            why.append(f"lacks {', '.join(v.missing)} for {model}")
        elif v.status != USABLE:
            why.append(f"cannot tell whether it has {', '.join(v.undecided)} for {model} ({source.kind})")
        if not startable(self.qemu(host), model):
            series = (host.facts["qemu"] or {}).get("series") or "of unknown version"
            why.append(f"QEMU {series} has no {model}")
        return why

    def runs_any(self, host) -> bool:
        """Whether the host can give some named model (its QEMU having it): a domain needs one."""
        _, verdicts = self._judged(host)
        q = self.qemu(host)
        return any(v.status == USABLE and startable(q, v.name) for v in verdicts.values())

    def extras(self, hosts: list, model: str) -> list[str]:
        """The features beyond ``model`` that every one of ``hosts`` gives (worth +feat)."""
        shared = None
        for one in {_key(h.cpu): h for h in hosts}.values():  # one host per distinct CPU
            present = present_features(self._judged(one)[0])
            shared = present if shared is None else shared & present
        return extra_features(model, shared or set())
