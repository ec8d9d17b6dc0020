"""QEMU's and libvirt's upstream versions and QEMU's machine types, without running anything.

Read only where a migration question is asked (``check --for migration``, ``--format nfd``,
``snapshot``): the dpkg database is one file of 0.5-5 MiB, and plain check keeps its speed.
It is read once per run (the ``dpkg_status`` fact), and probe.qemu's own reader takes the
same text when it is there. RPM's database is SQLite (rpmdb.sqlite) or Berkeley DB, not
text: hosts without dpkg read RPM's SQLite database instead (kvmtune.probe.rpmdb); without
either, versions are unknown (None), never guessed from a binary.

Machine types are compiled into QEMU; no distribution's package file list names them. What
names them without running QEMU is libvirt's capabilities cache (written when libvirtd
probes a QEMU binary): ``<machine ... name='pc-q35-7.2'/>`` lines. Where it is absent,
``machine_types`` is [].

Without dpkg, RPM's SQLite database is read where it is there and readable (kvmtune.probe.rpmdb).
"""

from __future__ import annotations

from kvmtune.grammar import digits
from kvmtune.probe.qemu import DPKG_STATUS, DPKG_STATUS_MAX, PACKAGES, parse_dpkg_status
from kvmtune.record import record

# The daemon decides what migrates; libvirt0 (the library) is there wherever either is.
LIBVIRT_PACKAGES = ("libvirt-daemon", "libvirt-daemon-system", "libvirt0")
# RHEL and Fedora: the emulator is in qemu-kvm-core / qemu-system-x86-core (qemu-kvm is a metapackage).
RPM_QEMU = ("qemu-kvm-core", "qemu-kvm", "qemu-system-x86-core", "qemu-system-x86")
RPM_LIBVIRT = ("libvirt-daemon", "libvirt-daemon-kvm", "libvirt-libs")
LIBVIRT_CAPS = "var/cache/libvirt/qemu/capabilities"
CAPS_MAX = 4 << 20


@record
class Packages:
    qemu: str | None  # upstream version, 7.2.0
    libvirt: str | None
    machine_types: tuple[str, ...]
    database: str | None  # where the versions came from: "dpkg", or None


def upstream_version(version: str | None) -> str | None:
    """dpkg's ``[epoch:]upstream[-revision]`` -> upstream as X.Y.Z: ``1:7.2+dfsg-7+deb12u18`` ->
    ``7.2.0``, ``9.0.0-4+deb12u2`` -> ``9.0.0``, ``1:8.2.2+ds-0ubuntu1`` -> ``8.2.2``. None when
    the upstream part does not start with numbers (Debian policy 5.6.12)."""
    if not version:
        return None
    upstream = version.split(":", 1)[1] if ":" in version else version
    upstream = upstream.rsplit("-", 1)[0] if "-" in upstream else upstream
    for stop in "+~":
        upstream = upstream.split(stop, 1)[0]
    parts = upstream.split(".")
    numbers = []
    for part in parts:
        if not digits(part):
            break
        numbers.append(str(int(part)))
    if len(numbers) < 2:
        return None
    return ".".join((numbers + ["0"])[:max(3, len(numbers))])


def parse_machine_types(text: str) -> set[str]:
    """``<machine type='kvm' name='pc-q35-7.2' ...>`` in a libvirt capabilities cache file."""
    names = set()
    for chunk in text.split("<machine ")[1:]:
        head = chunk.split(">", 1)[0]
        for quote in ("'", '"'):
            key = f"name={quote}"
            if key in head:
                name = head.split(key, 1)[1].split(quote, 1)[0]
                if name:
                    names.add(name)
                break
    return names


def read_dpkg_status(host) -> str | None:
    return host.read_optional(DPKG_STATUS, limit=DPKG_STATUS_MAX)


def read_packages(host, status: str | None) -> Packages:
    """Versions from dpkg's status text (already read: ``status``), machine types from libvirt's
    capabilities cache."""
    qemu = libvirt = database = None
    if status is not None:
        found = parse_dpkg_status(status, PACKAGES)
        qemu = upstream_version(found[1]) if found else None
        found = parse_dpkg_status(status, LIBVIRT_PACKAGES)
        libvirt = upstream_version(found[1]) if found else None
        database = "dpkg"
    else:
        qemu, libvirt, database = _from_rpm(host)
    types: set[str] = set()
    for name in host.listdir(LIBVIRT_CAPS):
        if name.endswith(".xml"):
            text = host.read_optional(f"{LIBVIRT_CAPS}/{name}", limit=CAPS_MAX)
            types |= parse_machine_types(text or "")
    return Packages(qemu, libvirt, tuple(sorted(types)), database)


def _from_rpm(host) -> tuple[str | None, str | None, str | None]:
    from kvmtune.errors import HostError
    from kvmtune.probe.rpmdb import RPMDB, RPMDB_MAX, rpm_versions

    try:
        db = host.read_bytes_optional(RPMDB, RPMDB_MAX)
    except HostError:
        return None, None, None  # "where readable": a refused database leaves the versions unknown
    if db is None:
        return None, None, None
    qemu, libvirt = rpm_versions(db, (RPM_QEMU, RPM_LIBVIRT))
    return upstream_version(qemu), upstream_version(libvirt), "rpm"
