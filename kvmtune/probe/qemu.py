"""Which QEMU the host has: its package (from dpkg's database) and its binary, without running it.

Read for ``check --json`` (so fleet results say which QEMU each host runs) and by
cpu-models. The package database is one file (/var/lib/dpkg/status, 0.5-5 MiB), read only
when dpkg's file list of a QEMU package says there is something to find, and only that
package's stanza is parsed. Hosts without dpkg (RPM's database is not a text file) report
the binary alone.
"""

from __future__ import annotations

from kvmtune.grammar import digits

from kvmtune.record import record

# Where distributions put the x86 system emulator (RHEL's qemu-kvm lives in libexec).
BINARIES = ("usr/bin/qemu-system-x86_64", "usr/libexec/qemu-kvm", "usr/bin/qemu-kvm")
# Debian and Ubuntu ship it as qemu-system-x86; qemu-kvm is the older Ubuntu name.
PACKAGES = ("qemu-system-x86", "qemu-kvm")
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_MAX = 64 << 20


@record
class QemuInstall:
    binary: str | None = None  # host path of the emulator, None if none was found
    package: str | None = None  # the dpkg package that holds it
    version: str | None = None  # its dpkg version, e.g. 1:7.2+dfsg-7+deb12u18+b3

    @property
    def installed(self) -> bool:
        return self.binary is not None or self.version is not None

    @property
    def series(self) -> str | None:
        return upstream_series(self.version)

    def to_json(self) -> dict:
        return {"installed": self.installed, "binary": "/" + self.binary if self.binary else None,
                "package": self.package, "version": self.version, "series": self.series}


def upstream_series(version: str | None) -> str | None:
    """``1:7.2+dfsg-7+deb12u18`` -> ``7.2``; ``1:8.2.2+ds-0ubuntu1`` -> ``8.2`` (Debian policy:
    epoch, upstream version, Debian revision)."""
    if not version:
        return None
    upstream = version.partition(":")[2] if ":" in version else version
    for stop in "+-~":
        upstream = upstream.split(stop, 1)[0]
    parts = upstream.split(".")
    if len(parts) < 2 or not (digits(parts[0]) and digits(parts[1])):
        return None
    return f"{int(parts[0])}.{int(parts[1])}"


def parse_dpkg_status(text: str, packages=PACKAGES) -> tuple[str, str] | None:
    """(package, version) of the first of ``packages`` dpkg has installed, else None. Only the
    package's own stanza is parsed: the whole database is thousands of them (7 ms to split)."""
    for name in packages:
        at = 0 if text.startswith(f"Package: {name}\n") else text.find(f"\nPackage: {name}\n")
        if at < 0:
            continue
        end = text.find("\n\n", at + 1)
        fields = {}
        for line in text[at:end if end >= 0 else len(text)].split("\n"):
            key, sep, value = line.partition(":")
            if sep and key in ("Status", "Version"):
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and fields.get("Version"):
            return name, fields["Version"]
    return None


def read_qemu(host, status: str | None = None) -> QemuInstall:
    """dpkg's file list of the package names the binary (the binary itself is never looked at:
    a snapshot would try to copy it); without dpkg, the binary's presence is all there is.
    ``status``: dpkg's database when this run already read it (kvmtune.probe.packages)."""
    for name in PACKAGES:
        listed = host.read_optional(f"var/lib/dpkg/info/{name}.list")
        if listed is None:
            continue
        paths = {line.strip().lstrip("/") for line in listed.splitlines()}
        binary = next((b for b in BINARIES if b in paths), None)
        text = status if status is not None else host.read_optional(DPKG_STATUS, limit=DPKG_STATUS_MAX)
        package = parse_dpkg_status(text, (name,)) if text else None
        if package is not None:
            return QemuInstall(binary, *package)
    return QemuInstall(next((b for b in BINARIES if host.exists(b)), None))


def ask_cpu_models(host, install: QemuInstall) -> frozenset[str]:
    """The model names the installed binary lists (``-cpu help``): live hosts only."""
    text = host.run_program(install.binary, ["-cpu", "help"])
    return parse_cpu_help(text)


def parse_cpu_help(text: str) -> frozenset[str]:
    """``x86 Skylake-Client-IBRS  (alias of Skylake-Client-v2)`` lines; host, max and base are
    not models of a table."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "x86" and parts[1] not in ("host", "max", "base"):
            names.add(parts[1])
    if not names:
        raise ValueError("-cpu help listed no x86 models")
    return frozenset(names)
