"""Strict validation of a profile's YAML tree into the typed model (no host needed).

What can only be judged against a host (does this sysctl exist, does node 3
exist, is there a 1G pool, is enough memory left) is checked by the planners,
which raise the same ProfileError with the same positions.
"""

from __future__ import annotations

import re

from kvmtune.grammar import account_problem, digits, mount_path_problem, sysctl_name_problem, sysctl_value_problem
from kvmtune.profile.model import Amount, MountRequest, PoolRequest, Profile
from kvmtune.profile.schema_ksm import ksm_policy
from kvmtune.profile.schema_cpus import cpus_section, kvm_modules_section, power_section
from kvmtune.profile.schema_iommu_sriov import iommu_sriov_sections
from kvmtune.profile.shapes import PLAIN_WORD, _bool, _int, _kind, _str, expect_mapping, unknown_key
from kvmtune.profile.source import Node

TOP_KEYS = ("extends", "description", "sysctl", "hugepages", "hugetlbfs", "ksm", "thp", "cpus", "power",
            "kvm_modules", "intents",
            "iommu", "sriov", "boot")
TOP_KEYS += ("vfio",)
POOL_KEYS = ("count", "size", "percent", "per_node", "spread", "boot")
MOUNT_KEYS = ("path", "pagesize", "size", "min_size", "mode", "owner", "group")
DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# KSM knobs (Documentation/admin-guide/mm/ksm.rst): name -> (min, max) or the allowed words.
KSM_KNOBS = {
    "run": (0, 2), "pages_to_scan": (0, 1 << 31), "sleep_millisecs": (0, 1 << 31),
    "merge_across_nodes": (0, 1), "max_page_sharing": (2, 1 << 31), "use_zero_pages": (0, 1),
    "smart_scan": (0, 1), "stable_node_chains_prune_millisecs": (0, 1 << 31),
    "advisor_mode": ("none", "scan-time"), "advisor_max_cpu": (1, 100),
    "advisor_target_scan_time": (1, 1 << 31), "advisor_min_pages_to_scan": (1, 1 << 31),
    "advisor_max_pages_to_scan": (1, 1 << 31),
}
THP_KNOBS = {
    "enabled": ("always", "madvise", "never"),
    "defrag": ("always", "defer", "defer+madvise", "madvise", "never"),
    "shmem_enabled": ("always", "within_size", "advise", "never", "deny", "force"),
}


def parse_bytes(node: Node, allow_percent: bool = False) -> str:
    """``16G``, ``512M``, ``1073741824`` (or ``50%``) -> the kernel's form (bytes or N%)."""
    text = str(node.value).strip() if not isinstance(node.value, bool) else ""
    if allow_percent and text.endswith("%") and digits(text[:-1]) and 0 < int(text[:-1]) <= 100:
        return text
    unit = text[-1:].upper()
    number = text[:-1] if unit in UNITS else text
    if not digits(number) or (unit not in UNITS and not digits(unit)):
        raise node.error(f"expected a size such as 16G, 512M or a byte count"
                         f"{' or a percent such as 50%' if allow_percent else ''}, got {node.value!r}")
    return str(int(number) * UNITS.get(unit, 1))


def page_size_kb(node: Node, key: str) -> int:
    """``2M`` / ``1G`` / ``2048kB`` -> kB."""
    text = key.strip()
    low = text.lower()
    for suffix, factor in (("kb", 1), ("k", 1), ("m", 1024), ("mb", 1024), ("g", 1 << 20), ("gb", 1 << 20)):
        if low.endswith(suffix) and digits(low[: -len(suffix)]):
            return int(low[: -len(suffix)]) * factor
    raise node.error(f"unknown page size '{key}'; expected a size such as 2M or 1G")


def amount(node: Node, kind: str | None = None) -> Amount:
    if kind == "percent" or (kind is None and isinstance(node.value, str) and node.value.strip().endswith("%")):
        text = str(node.value).strip().rstrip("%") if not isinstance(node.value, bool) else ""
        if not DECIMAL.fullmatch(text):  # float() would also take "1e1", "nan", "1_0" and "٣"
            raise node.error(f"expected a percent such as 10%, got {node.value!r}")
        value = float(text)
        if not 0 <= value <= 100:
            raise node.error(f"{node.value} is out of range (0..100%)")
        return Amount("percent", value, node)
    if kind == "count" or (kind is None and isinstance(node.value, int) and not isinstance(node.value, bool)):
        return Amount("count", _int(node), node)
    return Amount("bytes", int(parse_bytes(node)), node)


def validate(root: Node, name: str, chain: tuple) -> Profile:
    top = expect_mapping(root, "sections")
    for key in top:
        if key not in TOP_KEYS:
            raise unknown_key(root, key, TOP_KEYS)
    sysctl = {}
    if "sysctl" in top:
        for key, node in expect_mapping(top["sysctl"], "sysctl keys to values").items():
            plain = key[1:] if key.startswith("-") else key  # not ``name``: that is the profile's
            problem = sysctl_name_problem(plain)
            if problem:
                raise node.key_error(problem)
            other = sysctl.get(plain) or sysctl.get("-" + plain)
            if other:  # both would be applied, and verify would report one of them as drift for ever
                raise node.key_error(f"{plain} is also set at {other[1].file}:{other[1].key_line}:"
                                     f"{other[1].key_column} as {other[1].path.partition('.')[2]}: "
                                     "keep one (a leading '-' only means: skip it where the kernel lacks it)")
            sysctl[key] = (_sysctl_value(node), node)
    pools, compact = _hugepages(top["hugepages"]) if "hugepages" in top else ({}, False)
    mounts = _mounts(top["hugetlbfs"]) if "hugetlbfs" in top else ()
    policy, taken = ksm_policy(top["ksm"]) if "ksm" in top else (None, ())
    ksm, unmerge = _knobs(top["ksm"], KSM_KNOBS, extra=("allow_unmerge", *taken)) if "ksm" in top else ({}, False)
    thp, _ = _knobs(top["thp"], THP_KNOBS) if "thp" in top else ({}, False)
    if "advisor_mode" in ksm and ksm["advisor_mode"][0] == "scan-time" and "pages_to_scan" in ksm:
        raise ksm["pages_to_scan"][1].error(
            "cannot be set with advisor_mode: scan-time (the advisor owns it; the kernel answers EINVAL)")
    description = _str(top["description"]) if "description" in top else ""
    return Profile(name, root.file, description, sysctl, pools, compact, mounts, ksm, unmerge, thp, chain,
                   kvm_modules_section(top["kvm_modules"]) if "kvm_modules" in top else {},
                   cpus_section(top["cpus"]) if "cpus" in top else None,
                   power_section(top["power"]) if "power" in top else {},
                   _intents(top["intents"]) if "intents" in top else (),
                   boot=_boot(top["boot"]) if "boot" in top else {},
                   **iommu_sriov_sections(top), ksm_policy=policy,
                   vfio=_vfio(top["vfio"]) if "vfio" in top else ())


def _vfio(node: Node) -> tuple:
    from kvmtune.profile.schema_vfio import vfio_section

    return vfio_section(node)


def _boot(node: Node) -> dict:
    from kvmtune.profile.schema_boot import boot_section

    return boot_section(node)


def _intents(node: Node) -> tuple:
    """``intents: [passthrough]``: names from the intents table, each once."""
    from kvmtune.checks.intents import INTENTS

    if not node.is_list:
        raise node.error(f"expected a list of intents ({', '.join(INTENTS)}), got {_kind(node)}")
    names = []
    for item in node.value:
        if not isinstance(item.value, str) or item.value not in INTENTS:
            shown = f"'{item.value}'" if isinstance(item.value, str) and PLAIN_WORD.fullmatch(item.value) else _kind(item)
            raise item.error(f"unknown intent {shown}; expected one of: {', '.join(INTENTS)}")
        names.append(item.value)
    return tuple(dict.fromkeys(names))


def _sysctl_value(node: Node) -> str:
    value = node.value
    if isinstance(value, bool) or value is None:
        # yes/no/on/off are YAML booleans: say what the kernel wants instead of guessing.
        raise node.error(f"expected a number or string, got {_kind(node)}; write 1 or 0 (quoted text if you mean the word)")
    if isinstance(value, list):
        raise node.error("expected a number or string; write multi-field values as one string, e.g. \"4096 87380 6291456\"")
    if isinstance(value, dict):
        raise node.error("expected a number or string, got a mapping (write the full dotted key)")
    if isinstance(value, float):
        raise node.error(f"expected a whole number or string, got {value!r}")
    problem = sysctl_value_problem(str(value))
    if problem:
        raise node.error(problem)
    return str(value)


def _hugepages(node: Node) -> tuple[dict, bool]:
    pools = {}
    compact = False
    for key, child in expect_mapping(node, "page sizes").items():
        if key == "compact":
            compact = _bool(child)
            continue
        size = page_size_kb(child, key)
        if size in pools:
            raise child.error(f"page size {key} given twice")
        if child.is_mapping:
            pools[size] = _pool(child, size)
        else:
            pools[size] = PoolRequest(size, amount(child), {}, False, False, child)
    return pools, compact


def _pool(node: Node, size: int) -> PoolRequest:
    spec = node.value
    for key in spec:
        if key not in POOL_KEYS:
            raise unknown_key(node, key, POOL_KEYS)
    given = [k for k in ("count", "size", "percent") if k in spec]
    if len(given) > 1:
        raise spec[given[1]].error(f"give one of count, size or percent, not {' and '.join(given)}")
    total = amount(spec[given[0]], {"count": "count", "size": None, "percent": "percent"}[given[0]]) if given else None
    if total is not None and given[0] == "size" and total.kind != "bytes":
        raise spec["size"].error("expected a size such as 16G")
    per_node = {}
    if "per_node" in spec:
        for key, child in expect_mapping(spec["per_node"], "node ids to amounts").items():
            if not digits(key):
                raise child.key_error(f"node ids are numbers, got '{key}'")
            per_node[int(key)] = amount(child)
    spread = _bool(spec["spread"]) if "spread" in spec else False
    if spread and per_node:
        raise spec["spread"].error("spread and per_node exclude each other")
    if spread and total is None:
        raise spec["spread"].error("spread needs a count, size or percent to spread")
    if total is None and not per_node:
        raise node.error("expected count, size, percent or per_node")
    return PoolRequest(size, total, per_node, spread, _bool(spec["boot"]) if "boot" in spec else False, node)


def _mounts(node: Node) -> tuple:
    if not node.is_list:
        raise node.error(f"expected a list of mounts, got {_kind(node)}")
    mounts, seen = [], set()
    for item in node.value:
        spec = expect_mapping(item, "mount settings")
        for key in spec:
            if key not in MOUNT_KEYS:
                raise unknown_key(item, key, MOUNT_KEYS)
        if "path" not in spec:
            raise item.error("a hugetlbfs mount needs a path")
        path = _str(spec["path"])
        problem = mount_path_problem(path)
        if problem:
            raise spec["path"].error(problem)
        if path in seen:
            raise spec["path"].error(f"{path} is mounted twice")
        seen.add(path)
        mode = 0o755
        if "mode" in spec:
            text = spec["mode"].value
            if not isinstance(text, str) or not text or any(c not in "01234567" for c in text) or int(text, 8) > 0o1777:
                raise spec["mode"].error(f'expected an octal mode as a quoted string, e.g. mode: "1770", got {text!r}')
            mode = int(text, 8)
        mounts.append(MountRequest(
            path,
            page_size_kb(spec["pagesize"], str(spec["pagesize"].value)) if "pagesize" in spec else None,
            parse_bytes(spec["size"], allow_percent=True) if "size" in spec else None,
            parse_bytes(spec["min_size"], allow_percent=True) if "min_size" in spec else None,
            mode,
            _account(spec["owner"]) if "owner" in spec else None,
            _account(spec["group"]) if "group" in spec else None,
            item,
        ))
    return tuple(mounts)


def _account(node: Node) -> str:
    text = str(node.value) if isinstance(node.value, (str, int)) and not isinstance(node.value, bool) else ""
    problem = account_problem(text)
    if problem:
        raise node.error(problem)
    return text


def _knobs(node: Node, table: dict, extra: tuple = ()) -> tuple[dict, bool]:
    out, flag = {}, False
    for key, child in expect_mapping(node, "knobs to values").items():
        if key in extra:
            flag = _bool(child) if key == extra[0] else flag  # the others: another validator's keys
            continue
        if key not in table:
            raise unknown_key(node, key, list(table) + list(extra))
        allowed = table[key]
        if isinstance(allowed[0], int):
            out[key] = (_int(child, *allowed), child)
        elif child.value not in allowed:
            raise child.error(f"expected one of {', '.join(allowed)}, got {child.value!r}")
        else:
            out[key] = (child.value, child)
    return out, flag
