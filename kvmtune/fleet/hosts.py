"""What migration reads of each host's check result, as one record per host.

The facts come from ``host.migration`` (TSC, clocksource, versions: issue #21's fixed keys),
``host.cpu`` (the named CPU models it can run, judged as cpu-baseline judges them),
``host.memory.hugepages`` (free pages per size) and the ``cpu.vulnerabilities`` check's data
(the mitigations in force). Nothing here judges more than one host.
"""

from __future__ import annotations

from kvmtune.fleet.load import ALL, CPU_FIELDS, EACH
from kvmtune.grammar import digits
from kvmtune.record import record

FIELDS = {
    "schema_version": ALL,
    "checks": [{"id": ALL, "data": {"states": ALL, "mitigations": {"value": ALL}}}],
    "host": {"hostname": ALL, "cpu": CPU_FIELDS, "qemu": ALL, "migration": ALL,
             "memory": {"hugepages": {"pools": {EACH: {"free": ALL, "total": ALL}}}}},
}


@record
class FleetHost:
    name: str
    vendor: str | None
    arch: str | None
    cpu: dict  # host.cpu as cut by CPU_FIELDS: the source of its CPU models
    facts: dict  # host.cpu and host.qemu, as cpumodels.baseline reads them
    tsc_khz: int | None
    tsc_scaling: bool
    qemu: tuple | None  # the upstream version, (7, 2, 0); None where not known
    hugepages_free: dict  # size in kB (str, as in check --json) -> free pages
    microcode: str | None
    mitigations: tuple  # ((vulnerability, state), ...) and the mitigations= value, sorted

    @property
    def series(self) -> tuple | None:
        """QEMU's release series, (7, 2): the patch releases of one stable branch keep the
        machine types and the migration stream of their .0 release, so they move both ways."""
        return self.qemu[:2] if self.qemu else None


def qemu_version(text) -> tuple | None:
    """``7.2.0`` or ``7.2`` -> (7, 2, 0) / (7, 2); anything else None."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    if not 2 <= len(parts) <= 3 or not all(digits(p) and len(p) <= 4 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def version_text(version: tuple | None) -> str:
    return ".".join(map(str, version)) if version else "unknown"


def read_loaded(path: str, kind: str, result: dict, memo: dict):
    """fleet.load's ``post``: a check result as its FleetHost, made in the worker that parsed
    it (what every host shares, such as the mitigations, is one object). A guests result
    describes no CPU: None."""
    if kind != "check":
        return None
    host = read_host(result["host"].get("hostname") or path, result)
    return host._replace(mitigations=memo.setdefault(("mitigations", host.mitigations), host.mitigations),
                         microcode=memo.setdefault(("microcode", host.microcode), host.microcode))


def read_host(name: str, result: dict) -> FleetHost:
    host = result.get("host") or {}
    mig = host.get("migration") if isinstance(host.get("migration"), dict) else {}
    cpu = host.get("cpu") if isinstance(host.get("cpu"), dict) else {}
    qemu_facts = host.get("qemu") if isinstance(host.get("qemu"), dict) else {}
    # host.migration.qemu is the upstream version; a result from before it has host.qemu.series.
    qemu = qemu_version(mig.get("qemu")) or qemu_version(qemu_facts.get("series"))
    if qemu_facts.get("installed") is False:
        qemu = None
    tsc = mig.get("tsc_khz")
    pools = ((host.get("memory") or {}).get("hugepages") or {}).get("pools") or {}
    free = {size: pool.get("free") for size, pool in pools.items()
            if isinstance(pool, dict) and isinstance(pool.get("free"), int) and digits(size)}
    return FleetHost(name, cpu.get("vendor") if isinstance(cpu.get("vendor"), str) else None,
                     cpu.get("arch"), cpu, {"cpu": cpu, "qemu": qemu_facts},
                     tsc if isinstance(tsc, int) and not isinstance(tsc, bool) and tsc > 0 else None,
                     mig.get("tsc_scaling") is True, qemu, free,
                     mig.get("microcode") if isinstance(mig.get("microcode"), str) else None,
                     _mitigations(result.get("checks")))


def _mitigations(checks) -> tuple:
    for c in checks if isinstance(checks, list) else ():
        if isinstance(c, dict) and c.get("id") == "cpu.vulnerabilities" and isinstance(c.get("data"), dict):
            states = c["data"].get("states") if isinstance(c["data"].get("states"), dict) else {}
            value = (c["data"].get("mitigations") or {}).get("value")
            return tuple(sorted((str(k), str(v)) for k, v in states.items())) + (("mitigations=", str(value)),)
    return ()


def unfit(host: FleetHost) -> list[str]:
    """Why a host cannot be judged for any domain, whatever the others are."""
    why = []
    if host.arch not in (None, "x86_64"):
        why.append(f"named CPU models are judged for x86 hosts; this host is {host.arch}")
    if host.vendor is None:
        why.append("CPU vendor unknown")
    if host.tsc_khz is None and not host.tsc_scaling:
        why.append("TSC frequency unknown (no host.migration.tsc_khz) and no TSC scaling")
    if host.qemu is None:
        installed = (host.facts["qemu"] or {}).get("installed")
        why.append("no QEMU installed" if installed is False else "QEMU version unknown")
    return why
