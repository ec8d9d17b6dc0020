"""CPU and node lists in the kernel's formats, bounded by what a kernel can number.

They sit in the host layer because the host itself parses them (a thread's allowed CPUs);
probes import them from here through kvmtune.probe.parse.
"""

from __future__ import annotations


class ParseError(ValueError):
    """Text that does not have the kernel's format."""


# What a kernel can number: NR_CPUS is at most 8192 on x86-64 (MAXSMP) and MAX_NUMNODES
# 1024 (NODES_SHIFT 10); an id beyond these is damage, not a machine.
MAX_CPUS = 8192
MAX_NODES = 1024


def _trim(text: str) -> str:
    """The list without its line end. Some kernels (seen on a 5.15-rc arm64 dump) pad the
    list files of sysfs with NUL bytes after the newline: ``0-31\\n\\0``."""
    return text.rstrip("\0").strip()


def cpulist(text: str, limit: int = MAX_CPUS) -> list[int]:
    """``0-3,8,10-11`` -> [0, 1, 2, 3, 8, 10, 11]; empty text -> []. Ids must be below ``limit``,
    and so must the total: each range may be in bounds while the list is not (``0-8191``
    repeated to 131 KB would expand to 153 M ids). A kernel's list names each id once."""
    out: list[int] = []
    text = _trim(text)
    if not text:
        return out
    if len(text) > 16 * limit:
        raise ParseError(f"cpu list of {len(text)} characters for at most {limit} ids")
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not (lo + hi).isascii():  # int() reads '٣' as 3: not a kernel's cpu list
            raise ParseError(f"bad cpu list {text[:40]!r}")
        try:
            start = int(lo)
            end = int(hi) if sep else start
        except ValueError:
            raise ParseError(f"bad cpu list {text[:40]!r}") from None
        if not 0 <= start <= end < limit:
            raise ParseError(f"cpu range {part[:40]!r} is beyond the {limit} ids a kernel can have")
        if len(out) + end - start >= limit:  # checked before expanding, so memory stays bounded
            raise ParseError(f"cpu list {text[:40]!r}... names more than the {limit} ids a kernel can have")
        out.extend(range(start, end + 1))
    return out


def cpumask(text: str, limit: int = MAX_CPUS) -> list[int]:
    """A hex mask in 32-bit words, most significant first (``0000ffff,00000001``)."""
    digits = _trim(text).replace(",", "")
    if not digits:
        return []
    if len(digits.lstrip("0")) * 4 > limit:
        raise ParseError(f"cpu mask of {len(digits)} hex digits is beyond the {limit} ids a kernel can have")
    try:
        if not digits.isascii():  # int() reads '٣' as 3
            raise ValueError(digits)
        value = int(digits, 16)
    except ValueError:
        raise ParseError(f"bad cpu mask {text[:40]!r}") from None
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def format_cpulist(cpus: list[int]) -> str:
    """[0, 1, 2, 5] -> ``0-2,5``."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
