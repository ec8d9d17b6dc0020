"""Validation of the cpus, power and kvm_modules sections (CPU partitioning for pinned guests).

Only shapes and grammars here; whether the CPUs exist, the split keeps whole cores, the
governor is offered or the module has the parameter is judged against the host by the
planners, with the same file:line:column messages.
"""

from __future__ import annotations

import re

from kvmtune.grammar import KVM_MODULES, module_param_problem, module_value_problem
from kvmtune.profile.model import CpusRequest
from kvmtune.profile.shapes import _bool, _int, _kind, expect_mapping, unknown_key
from kvmtune.profile.source import Node

CPUS_FLAGS = ("nohz_full", "rcu_nocbs", "managed_irq", "irqaffinity", "irqbalance", "systemd", "workqueue")
# Off unless asked: a cpus: section written before them keeps its plan.
CPUS_OPT_IN = ("writeback", "kthreads")
CPUS_KEYS = ("isolated", "housekeeping", *CPUS_FLAGS, *CPUS_OPT_IN)
GOVERNOR = re.compile(r"[a-z][a-z0-9_-]{0,31}")
POWER_KEYS = ("governor", "energy_performance_preference", "boost", "max_wakeup_latency_us")


def kvm_modules_section(node: Node) -> dict:
    """kvm: {param: value}, kvm_intel: {...}, kvm_amd: {...}: held to the module-option grammar."""
    out = {}
    for module, child in expect_mapping(node, "KVM modules to their options").items():
        if module not in KVM_MODULES:
            raise unknown_key(node, module, KVM_MODULES)
        params = {}
        for param, value_node in expect_mapping(child, "parameters to values").items():
            problem = module_param_problem(param)
            if problem:
                raise value_node.key_error(problem)
            value = value_node.value
            if isinstance(value, bool):
                text = "Y" if value else "N"
            elif isinstance(value, (int, str)) and not isinstance(value, float):
                text = str(value)
            else:
                raise value_node.error(f"expected a number, a word or true/false, got {_kind(value_node)}")
            problem = module_value_problem(text)
            if problem:
                raise value_node.error(problem)
            params[param] = (text, value_node)
        out[module] = params
    return out


def cpus_section(node: Node) -> CpusRequest:
    from kvmtune.probe import parse

    spec = expect_mapping(node, "CPU partitioning settings")
    for key in spec:
        if key not in CPUS_KEYS:
            raise unknown_key(node, key, CPUS_KEYS)
    if ("isolated" in spec) == ("housekeeping" in spec):
        raise node.error("give either isolated (a CPU list) or housekeeping (per_node: N), not both or neither")
    isolated, per_node = None, 1
    if "isolated" in spec:
        text = spec["isolated"].value
        try:
            isolated = tuple(parse.cpulist(str(text))) if isinstance(text, (str, int)) and not isinstance(text, bool) else ()
        except ValueError:
            isolated = ()
        if not isolated:
            raise spec["isolated"].error(f"expected a CPU list such as 2-15,18-31, got {str(text)[:40]!r}")
    else:
        hk = expect_mapping(spec["housekeeping"], "housekeeping settings")
        for key in hk:
            if key != "per_node":
                raise unknown_key(spec["housekeeping"], key, ("per_node",))
        if "per_node" not in hk:
            raise spec["housekeeping"].error("expected per_node: N (whole cores kept for the host on every node)")
        per_node = _int(hk["per_node"], 1, 64)
    flags = {k: _bool(spec[k]) if k in spec else True for k in CPUS_FLAGS}
    flags.update({k: _bool(spec[k]) for k in CPUS_OPT_IN if k in spec})
    return CpusRequest(isolated, per_node, src=node, **flags)


def power_section(node: Node) -> dict:
    out = {}
    for key, child in expect_mapping(node, "power settings").items():
        if key not in POWER_KEYS:
            raise unknown_key(node, key, POWER_KEYS)
        if key in ("governor", "energy_performance_preference"):
            if not isinstance(child.value, str) or not GOVERNOR.fullmatch(child.value):
                raise child.error(f"expected a {key.replace('_', ' ')} name such as performance, got {child.value!r}")
            out[key] = (child.value, child)
        elif key == "boost":
            out[key] = (_bool(child), child)
        else:
            out[key] = (_int(child, 0, 2_000_000), child)
    return out
