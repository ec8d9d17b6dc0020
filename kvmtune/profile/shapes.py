"""The shape checks every section validator uses: mappings, whole numbers, booleans, strings,
and unknown keys answered with the closest known one."""

from __future__ import annotations

import difflib
import re

from kvmtune.profile.source import Node

MAX_INT = 1 << 40  # beyond any real page count or knob: a typo, not a setting
PLAIN_WORD = re.compile(r"[A-Za-z0-9_.:@+-]{1,64}")


def unknown_key(node: Node, key: str, allowed) -> Exception:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of: {', '.join(allowed)}"
    shown = f"'{key}'" if PLAIN_WORD.fullmatch(key) else "(not a plain word)"
    return node.value[key].key_error(f"unknown key {shown}{hint}")


def expect_mapping(node: Node, what: str) -> dict:
    if not node.is_mapping:
        raise node.error(f"expected a mapping of {what}, got {_kind(node)}")
    return node.value


def _kind(node: Node) -> str:
    if node.is_list:
        return "a list"
    if node.is_mapping:
        return "a mapping"
    return f"{type(node.value).__name__} {node.value!r}"


def _int(node: Node, lo: int = 0, hi: int = MAX_INT) -> int:
    if isinstance(node.value, bool) or not isinstance(node.value, int):
        raise node.error(f"expected a whole number, got {_kind(node)}")
    if not lo <= node.value <= hi:
        raise node.error(f"{node.value} is out of range ({lo}..{hi})")
    return node.value


def _bool(node: Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.error(f"expected true or false, got {_kind(node)}")
    return node.value


def _str(node: Node) -> str:
    if not isinstance(node.value, str) or not node.value:
        raise node.error(f"expected a string, got {_kind(node)}")
    return node.value
