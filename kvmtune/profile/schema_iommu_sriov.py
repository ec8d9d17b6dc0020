"""Validation of the iommu and sriov sections (device passthrough and SR-IOV at boot).

Only shapes and grammars here; whether the PF exists, is an SR-IOV PF and offers the count
is judged against the host by the sriov planner (kvmtune.tune.sriov), with the same
file:line:column messages.
"""

from __future__ import annotations

from kvmtune.grammar import pf_name_problem
from kvmtune.profile.model import SriovRequest
from kvmtune.profile.shapes import PLAIN_WORD, _bool, _int, _kind, expect_mapping, unknown_key
from kvmtune.profile.source import Node

IOMMU_MODES = ("pt", "lazy", "strict")
SRIOV_KEYS = ("numvfs", "autoprobe")
MAX_VFS = 65535  # the SR-IOV capability's TotalVFs is a 16-bit field (PCIe base spec, 9.3.3.5)


def iommu_sriov_sections(top: dict) -> dict:
    """The Profile fields of both sections, for those the profile has."""
    out = {}
    if "iommu" in top:
        out["iommu"] = iommu_section(top["iommu"])
    if "sriov" in top:
        out["sriov"] = sriov_section(top["sriov"])
    return out


def iommu_section(node: Node) -> tuple:
    """``iommu: {mode: pt | lazy | strict}``: (mode, the mode's Node)."""
    spec = expect_mapping(node, "IOMMU settings")
    for key in spec:
        if key != "mode":
            raise unknown_key(node, key, ("mode",))
    if "mode" not in spec:
        raise node.error(f"expected mode: one of {', '.join(IOMMU_MODES)}")
    mode = spec["mode"]
    if not isinstance(mode.value, str) or mode.value not in IOMMU_MODES:
        shown = f"'{mode.value}'" if isinstance(mode.value, str) and PLAIN_WORD.fullmatch(mode.value) else _kind(mode)
        raise mode.error(f"unknown IOMMU mode {shown}; expected one of: {', '.join(IOMMU_MODES)} "
                         "(pt: identity for the host's own DMA; lazy: translated, TLB flushes batched; "
                         "strict: translated, flushed at every unmap)")
    return mode.value, mode


def sriov_section(node: Node) -> dict:
    """``sriov: {PF: {numvfs: N, autoprobe: bool}}``, each PF by address or netdev name."""
    out = {}
    for name, child in expect_mapping(node, "PFs (PCI address or interface name) to SR-IOV settings").items():
        problem = pf_name_problem(name)
        if problem:
            raise child.key_error(problem)
        spec = expect_mapping(child, "SR-IOV settings (numvfs, autoprobe)")
        for key in spec:
            if key not in SRIOV_KEYS:
                raise unknown_key(child, key, SRIOV_KEYS)
        if not spec:
            raise child.error("expected numvfs: N and/or autoprobe: true|false")
        numvfs = _int(spec["numvfs"], 0, MAX_VFS) if "numvfs" in spec else None
        autoprobe = _bool(spec["autoprobe"]) if "autoprobe" in spec else None
        out[name] = SriovRequest(numvfs, autoprobe, child, spec.get("numvfs"))
    return out
