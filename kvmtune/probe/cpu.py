"""CPU identity, flags and topology from /proc/cpuinfo and sysfs.

Only the first processor block is parsed in full: the kernel prints the same
feature flags for every CPU, and a 1024-CPU cpuinfo is 1.5 MB. The other blocks
are scanned only for their ``physical id`` (to count sockets).
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host import Host
from kvmtune.probe import parse

CPU_DIR = "sys/devices/system/cpu"


@record
class CpuFacts:
    vendor: str | None = None
    model_name: str | None = None
    family: int | None = None
    model: int | None = None
    stepping: int | None = None
    flags: tuple[str, ...] = ()
    vmx_flags: tuple[str, ...] | None = None  # the "vmx flags" line, where the kernel prints it
    bugs: tuple[str, ...] = ()
    sockets: int | None = None
    online: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def hypervisor(self) -> bool:
        """Running under a hypervisor (the CPUID hypervisor bit)."""
        return "hypervisor" in self.flags

    def has(self, flag: str) -> bool:
        return flag in self.flags

    def to_json(self) -> dict:
        return {
            "vendor": self.vendor,
            "model_name": self.model_name,
            "family": self.family,
            "model": self.model,
            "stepping": self.stepping,
            "sockets": self.sockets,
            "online": list(self.online),
            "flags": list(self.flags),
            "vmx_flags": None if self.vmx_flags is None else list(self.vmx_flags),
            "bugs": list(self.bugs),
            "hypervisor": self.hypervisor,
        }


@record
class CpuInfoText:
    """What parse_cpuinfo finds in the text of /proc/cpuinfo."""

    first: dict[str, str]
    processors: tuple[int, ...]
    physical_ids: frozenset[str]
    complete: bool


def parse_cpuinfo(text: str) -> CpuInfoText:
    """Parse cpuinfo text; a truncated file yields what it holds and complete=False."""
    first: dict[str, str] = {}
    processors: list[int] = []
    physical: set[str] = set()
    in_first = True
    for line in text.splitlines():
        if not line.strip():
            if first:
                in_first = False
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        value = value.strip()
        if key == "processor":
            if value.isdigit():
                processors.append(int(value))
        elif key == "physical id":
            physical.add(value)
        if in_first:
            first.setdefault(key, value)
    complete = bool(first.get("flags")) and text.endswith("\n")
    return CpuInfoText(first, tuple(processors), frozenset(physical), complete)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def read_cpu(host: Host) -> CpuFacts:
    problems: list[str] = []
    try:
        info = parse_cpuinfo(host.read("proc/cpuinfo"))
    except HostError as exc:
        info = CpuInfoText({}, (), frozenset(), False)
        problems.append(f"/proc/cpuinfo: {exc.reason}")
    else:
        if not info.complete:
            problems.append("/proc/cpuinfo is truncated or has no flags line")

    first = info.first
    online = _read_online(host, info, problems)
    sockets = len(info.physical_ids) or _sockets_from_sysfs(host, online)
    vmx = first.get("vmx flags")
    return CpuFacts(
        vendor=first.get("vendor_id"),
        model_name=first.get("model name"),
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        flags=tuple(first.get("flags", "").split()),
        vmx_flags=tuple(vmx.split()) if vmx is not None else None,
        bugs=tuple(first.get("bugs", "").split()),
        sockets=sockets or None,
        online=tuple(online),
        problems=tuple(problems),
    )


def _read_online(host: Host, info: CpuInfoText, problems: list[str]) -> list[int]:
    try:
        text = host.read_optional(f"{CPU_DIR}/online")
        if text is not None:
            return parse.cpulist(text)
    except (HostError, parse.ParseError) as exc:
        problems.append(f"/{CPU_DIR}/online: {exc}")
    # Old kernels and some snapshots lack the file: cpuinfo lists online CPUs.
    return sorted(info.processors)


def _sockets_from_sysfs(host: Host, online: list[int]) -> int:
    ids = set()
    for cpu in online:
        try:
            text = host.read_optional(f"{CPU_DIR}/cpu{cpu}/topology/physical_package_id")
        except HostError:
            continue
        if text is not None:
            ids.add(text.strip())
    return len(ids)
