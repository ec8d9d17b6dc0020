"""Host-wide text files several probes share: meminfo, the kernel command line, mounts."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe import parse


@record
class Mount:
    source: str
    target: str
    fstype: str
    options: dict[str, str | None]


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts lines; octal escapes (\\040 for a space) are decoded. A line whose mount
    point is not a normal absolute path (``/../../etc``) is not a mount kvmtune can judge."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        target = unescape(fields[1])
        if not target.startswith("/") or any(p in (".", "..") for p in target.split("/")):
            continue
        opts: dict[str, str | None] = {}
        for opt in fields[3].split(","):
            key, sep, value = opt.partition("=")
            opts[key] = value if sep else None
        out.append(Mount(unescape(fields[0]), target, fields[2], opts))
    return out


def unescape(field: str) -> str:
    """The kernel's mangle(): \\ooo octal escapes; anything else is taken as it is."""
    if "\\" not in field:
        return field
    out = bytearray()
    data = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(data):
        chunk = data[i + 1:i + 4]
        if data[i] == 0x5C and len(chunk) == 3 and all(0x30 <= c <= 0x37 for c in chunk) and int(chunk, 8) < 256:
            out.append(int(chunk, 8))
            i += 4
        else:
            out.append(data[i])
            i += 1
    return out.decode("utf-8", "replace")


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
    """The kernel command line as (key, value) words; [] if absent, HostError if unreadable."""
    return parse.cmdline(host.read_optional("proc/cmdline") or "")


def read_mounts(host: Host) -> list[Mount] | None:
    """/proc/mounts; None if absent (a snapshot that did not capture it), HostError if unreadable."""
    text = host.read_optional("proc/mounts", limit=16 << 20)
    return None if text is None else parse_mounts(text)


def cmdline_values(words: list[tuple[str, str | None]], key: str) -> list[str]:
    return [v if v is not None else "" for k, v in words if k == key]


def read_noting(host: Host, rel: str, problems: list[str]) -> str | None:
    """A file's text, None if absent; a refusal is noted in ``problems`` (and gives None)."""
    try:
        return host.read_optional(rel)
    except HostError as exc:
        problems.append(f"/{rel}: {exc.reason}")
        return None


SYSTEMD_CONF = "etc/systemd/system.conf"
MAX_CONF_DROPINS = 256  # a directory of drop-ins is read in name order, as systemd reads it


def read_systemd_conf(host) -> tuple[tuple[str, str | None], ...]:
    """systemd's manager configuration: system.conf, then system.conf.d/*.conf in name order
    (a later file wins), each (path, text or None if absent/unreadable). Read once for every
    fact that needs it (CPUAffinity=, DefaultLimitMEMLOCK=)."""
    from kvmtune.errors import HostError

    d = f"{SYSTEMD_CONF}.d"
    rels = [SYSTEMD_CONF] + [f"{d}/{n}" for n in sorted(host.listdir(d))[:MAX_CONF_DROPINS] if n.endswith(".conf")]
    out = []
    for rel in rels:
        try:
            out.append((rel, host.read_optional(rel)))
        except HostError:
            out.append((rel, None))
    return tuple(out)
