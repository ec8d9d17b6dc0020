"""CPU identity, flags and topology from /proc/cpuinfo and sysfs.

Only the first processor block is parsed in full: the kernel prints the same
feature flags for every CPU, and a 1024-CPU cpuinfo is 1.5 MB. The other blocks
are scanned only for their ``physical id`` (to count sockets).
"""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import Host
from kvmtune.probe import parse
from kvmtune.probe.cpu_arch import ArchIdentity, CoreType, arch_of
from kvmtune.grammar import digits

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
    bugs: tuple[str, ...] | None = None  # None: the kernel printed no bugs line at all
    sockets: int | None = None
    online: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()
    arch: str = "x86_64"
    features: tuple[str, ...] = ()  # aarch64 Features, s390x features (x86 has flags)
    facilities: tuple[int, ...] = ()
    core_types: tuple[CoreType, ...] = ()
    platform: str | None = None
    machine: str | None = None
    sockets_unknown: str | None = None  # why sockets is None
    kernel: str | None = None  # s390x only: the release tells whether cpuinfo can list sie (>= 4.5)
    microcode: str | None = None  # x86's "microcode" line (0x1000065): host.migration shows it
    cpu_mhz: str | None = None  # the first CPU's "cpu MHz": the last resort for the TSC frequency

    @property
    def hypervisor(self) -> bool:
        """Running under a hypervisor (the CPUID hypervisor bit)."""
        return "hypervisor" in self.flags

    def unknowns(self) -> dict[str, str]:
        return {"cpu.sockets": self.sockets_unknown} if self.sockets_unknown else {}

    def has_feature(self, name: str) -> bool:
        return name in self.features

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
            "bugs": None if self.bugs is None else list(self.bugs),
            "hypervisor": self.hypervisor,
            "arch": self.arch,
            "features": list(self.features),
            "facilities": list(self.facilities),
            "core_types": [t.to_json() for t in self.core_types],
            "platform": self.platform,
            "machine": self.machine,
        }


@record
class CpuInfoText:
    """What parse_cpuinfo finds in the text of /proc/cpuinfo."""

    first: dict[str, str]
    physical_ids: frozenset[str]
    complete: bool
    text: str  # the rest is read only when needed: see processors()

    def processors(self) -> tuple[int, ...]:
        """Every CPU cpuinfo lists (only wanted when sysfs has no cpu/online)."""
        return tuple(int(v) for v in parse.line_values(self.text, "processor") if digits(v))


def parse_cpuinfo(text: str) -> CpuInfoText:
    """Parse cpuinfo text; a truncated file yields what it holds and complete=False."""
    first: dict[str, str] = {}
    head, _, _ = text.partition("\n\n")
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            first.setdefault(key.strip(), value.strip())
    # Only the socket ids are needed from the other blocks (1.3 MB on a 1024-CPU host): split
    # on x86's exact spelling (twice as fast), else look line by line.
    parts = text.split("\nphysical id\t: ")
    physical = (frozenset(p.partition("\n")[0].strip() for p in parts[1:]) if len(parts) > 1
                else frozenset(parse.line_values(text, "physical id")))
    # x86 prints flags, aarch64 Features, s390x features; POWER has no feature line, only its cpu.
    complete = any(first.get(k) for k in ("flags", "Features", "features", "cpu")) and text.endswith("\n")
    return CpuInfoText(first, physical, complete, text)


def _int(value: str | None) -> int | None:
    return int(value) if value and digits(value) else None


def read_cpu(host: Host) -> CpuFacts:
    problems: list[str] = []
    try:
        # 1.5 MB on a 1024-CPU host; 16 MiB holds every machine Linux numbers.
        info = parse_cpuinfo(host.read("proc/cpuinfo", limit=16 << 20))
    except HostError as exc:
        info = CpuInfoText({}, frozenset(), False, "")
        problems.append(f"/proc/cpuinfo: {exc.reason}")
    else:
        if not info.complete:
            problems.append("/proc/cpuinfo is truncated or has no flags line")

    first = info.first
    online = _read_online(host, info, problems)
    sockets, why = (len(info.physical_ids), None) if info.physical_ids else _sockets_from_sysfs(host, online)
    vmx = first.get("vmx flags")
    ident = ArchIdentity("x86_64", first.get("vendor_id"), first.get("model name"))
    sysinfo = kernel = None
    if first and arch_of(first) != "x86_64":
        from kvmtune.probe.cpu_arch import identify

        if arch_of(first) == "s390x":  # its machine type, hypervisor and kernel release: read only there
            from kvmtune.probe.system import read_noting

            sysinfo = read_noting(host, "proc/sysinfo", problems)
            kernel = read_noting(host, "proc/sys/kernel/osrelease", problems)
        ident = identify(first, info.text, sysinfo)
    return CpuFacts(
        vendor=ident.vendor,
        model_name=ident.model_name,
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        stepping=_int(first.get("stepping")),
        flags=tuple(first.get("flags", "").split()),
        vmx_flags=tuple(vmx.split()) if vmx is not None else None,
        bugs=tuple(first["bugs"].split()) if "bugs" in first else None,
        sockets=sockets or None,
        online=tuple(online),
        problems=tuple(problems),
        arch=ident.arch, features=ident.features, facilities=ident.facilities, core_types=ident.core_types,
        platform=ident.platform, machine=ident.machine, sockets_unknown=why,
        kernel=kernel.strip() if kernel else None,
        microcode=first.get("microcode") or None, cpu_mhz=first.get("cpu MHz") or None,
    )


def _read_online(host: Host, info: CpuInfoText, problems: list[str]) -> list[int]:
    try:
        text = host.read_optional(f"{CPU_DIR}/online")
        if text is not None:
            return parse.cpulist(text)
    except (HostError, parse.ParseError) as exc:
        problems.append(f"/{CPU_DIR}/online: {exc}")
    # Old kernels and some snapshots lack the file: cpuinfo lists online CPUs, and each
    # cpuN/online that says 0 takes its CPU out (cpu0 usually has no such file).
    known = set(info.processors()) or {int(e[3:]) for e in host.listdir(CPU_DIR)
                                     if e.startswith("cpu") and digits(e[3:]) and int(e[3:]) < parse.MAX_CPUS}
    online = []
    for cpu in sorted(known):
        try:
            flag = host.read_optional(f"{CPU_DIR}/cpu{cpu}/online")
        except HostError:
            flag = None
        if flag is None or flag.strip() != "0":
            online.append(cpu)
    return online


def _sockets_from_sysfs(host: Host, online: list[int]) -> tuple[int, str | None]:
    """Distinct package ids; where firmware does not number packages (-1), distinct
    core_siblings masks, as lscpu counts them; else unknown (0 and the reason)."""
    ids = set()
    for cpu in online:
        try:
            text = host.read_optional(f"{CPU_DIR}/cpu{cpu}/topology/physical_package_id")
        except HostError:
            continue
        if text is not None:
            ids.add(text.strip())
    if "-1" not in ids:
        return len(ids), None
    masks = set()
    for cpu in online:
        try:
            text = host.read_optional(f"{CPU_DIR}/cpu{cpu}/topology/core_siblings")
        except HostError:
            text = None
        if text is None:
            return 0, f"package id -1 and no readable core_siblings for cpu{cpu}"
        masks.add(text.rstrip("\0").strip())
    return len(masks), None
