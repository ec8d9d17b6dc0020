"""Host-wide text files several probes share: meminfo, the kernel command line, mounts."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host import Host
from kvmtune.probe import parse


@record
class Mount:
    source: str
    target: str
    fstype: str
    options: dict[str, str | None]


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts lines; octal escapes (\\040 for a space) are decoded."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        opts: dict[str, str | None] = {}
        for opt in fields[3].split(","):
            key, sep, value = opt.partition("=")
            opts[key] = value if sep else None
        out.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2], opts))
    return out


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape")


def read_meminfo(host: Host) -> tuple[dict[str, int], str | None]:
    """(/proc/meminfo values in kB, problem or None)."""
    try:
        text = host.read_optional("proc/meminfo")
    except HostError as exc:
        return {}, f"/proc/meminfo: {exc.reason}"
    if text is None:
        return {}, "/proc/meminfo: absent"
    return parse.kv_kb(text), None


def read_cmdline(host: Host) -> list[tuple[str, str | None]]:
    try:
        return parse.cmdline(host.read_optional("proc/cmdline") or "")
    except HostError:
        return []


def read_mounts(host: Host) -> list[Mount]:
    try:
        return parse_mounts(host.read_optional("proc/mounts") or "")
    except HostError:
        return []


def cmdline_values(words: list[tuple[str, str | None]], key: str) -> list[str]:
    return [v if v is not None else "" for k, v in words if k == key]
