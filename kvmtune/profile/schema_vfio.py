"""Validation of the vfio section: ``vfio: {devices: ['0000:01:00.0', '10de:1d01']}``.

Only the grammar here (a full PCI address or vendor:device ids, each once); whether the
device exists on the host is judged by the planner (tune.vfio), with the same
file:line:column messages.
"""

from __future__ import annotations

from kvmtune.grammar_pci import pci_entry_problem
from kvmtune.profile.shapes import PLAIN_WORD, _kind, expect_mapping, unknown_key
from kvmtune.profile.source import Node

VFIO_KEYS = ("devices",)


def vfio_section(node: Node) -> tuple:
    """((entry in lower case, Node), ...) in the profile's order."""
    spec = expect_mapping(node, "vfio settings (devices)")
    for key in spec:
        if key not in VFIO_KEYS:
            raise unknown_key(node, key, VFIO_KEYS)
    if "devices" not in spec:
        raise node.error("expected devices: a list of PCI addresses or vendor:device ids")
    devices = spec["devices"]
    if not devices.is_list or not devices.value:
        raise devices.error(f"expected a list of PCI addresses or vendor:device ids, got {_kind(devices)}")
    out, seen = [], {}
    for item in devices.value:
        text = item.value if isinstance(item.value, str) else None
        problem = pci_entry_problem(text) if text is not None else None
        if text is None or problem:
            shown = f"'{text}'" if text is not None and PLAIN_WORD.fullmatch(text) else _kind(item)
            raise item.error(f"{shown}: {problem or 'expected a quoted PCI address or vendor:device ids'}")
        entry = text.lower()
        if entry in seen:
            raise item.error(f"'{text}' is listed twice (also at line {seen[entry].line})")
        seen[entry] = item
        out.append((entry, item))
    return tuple(out)
