"""Parsers of the kernel's text formats (cpu lists, masks, key: value files)."""

from __future__ import annotations

from kvmtune.host.cpulist import MAX_CPUS, MAX_NODES, ParseError, cpulist, cpumask, format_cpulist
from kvmtune.grammar import digits, number

__all__ = ["MAX_CPUS", "MAX_NODES", "ParseError", "cpulist", "cpumask", "format_cpulist", "kv_kb", "bracketed",
           "cmdline", "int_or_none", "line_values"]


def kv_kb(text: str) -> dict[str, int]:
    """``/proc/meminfo``-style ``Key:   123 kB`` lines -> {Key: 123}.

    Node meminfo lines carry a ``Node N`` prefix, which is dropped. Lines that do
    not parse are skipped: a truncated file gives fewer keys, never an exception.
    """
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        key = key.split()[-1] if key.startswith("Node ") else key.strip()
        fields = rest.split()
        if fields and digits(fields[0]):
            out[key] = int(fields[0])
    return out


def bracketed(text: str) -> str | None:
    """The active choice of a sysfs selector: ``always [madvise] never`` -> madvise."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    stripped = text.strip()
    return stripped if stripped and " " not in stripped else None


def cmdline(text: str) -> list[tuple[str, str | None]]:
    """Kernel command line words as (key, value) pairs, in order; stops at ``--``."""
    out: list[tuple[str, str | None]] = []
    for word in text.split():
        if word == "--":
            break
        key, sep, value = word.partition("=")
        out.append((key, value if sep else None))
    return out


def int_or_none(text: str | None) -> int | None:
    """A whole number in ASCII, else None (int() would read '٣' as 3)."""
    return number(text)


def line_values(text: str, key: str) -> list[str]:
    """Every value of ``key: value`` at a line start (cpuinfo); str.find is far faster than a regex here."""
    out = []
    needle = "\n" + key
    pos = 0 if text.startswith(key) else text.find(needle)
    while pos != -1:
        colon = text.find(":", pos)
        end = text.find("\n", colon)
        if colon == -1:
            break
        if text[pos:colon].strip() == key:
            out.append(text[colon + 1:end if end != -1 else None].strip())
        pos = text.find(needle, colon)
    return out
