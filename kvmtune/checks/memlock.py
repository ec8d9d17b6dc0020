"""memlock: can the VMM lock the guest RAM a VFIO guest pins?

A guest with an assigned device pins all its RAM (plus what QEMU maps for the device's BARs
and ROM): VFIO_MAP_DMA fails with ENOMEM once RLIMIT_MEMLOCK is reached (kubevirt #8472,
meta-seapath #166). libvirt raises the limit itself for a domain with <hostdev> (to the
guest's memory plus 1 GiB), so a shortfall matters for QEMU started any other way.
A shortfall warns (passthrough blocks on it, kvmtune.checks.intents); a limit with no guest
to weigh it against is only stated.
"""

from __future__ import annotations

from kvmtune.checks.facts import Facts
from kvmtune.checks.model import INFO, PASS, TITLES, WARN, Check
from kvmtune.probe.memlock import UNLIMITED

TITLE = TITLES["memlock"]


def _size(kb: int | None) -> str:
    if kb is None:
        return "not set"
    if kb == UNLIMITED:
        return "unlimited"
    for unit, shift in (("GiB", 20), ("MiB", 10)):
        if kb >= 1 << shift:
            return f"{kb / (1 << shift):g} {unit}"
    return f"{kb} KiB"


def _below(limit: int | None, need_kb: int) -> bool:
    return limit is not None and limit != UNLIMITED and limit < need_kb


def _hint(user: str | None, need_kb: int | None) -> str:
    who = user or "USER"
    gib = -(-need_kb // (1 << 20)) + 1 if need_kb else None  # the guest's RAM and 1 GiB, as libvirt allows
    amount = f"{gib}G" if gib else "<guest RAM + 1G>"
    kib = str(gib << 20) if gib else "<KiB>"
    return (f"For a login session: '{who} - memlock {kib}' in /etc/security/limits.d/90-vfio.conf "
            f"(or 'unlimited'{'' if user else '; USER: the one QEMU runs as, or @group'}); for a service, a drop-in with 'LimitMEMLOCK={amount}' under [Service] "
            f"(systemctl edit UNIT), or DefaultLimitMEMLOCK= in /etc/systemd/system.conf.d/; "
            "libvirt raises it by itself for domains with <hostdev>.")


def _guest_ram_kb(guest) -> int:
    return guest.ram_kb if guest.ram_kb is not None else sum(m.size_kb for m in guest.mappings)


def check_memlock(facts: Facts) -> Check:
    ml = facts.memlock
    data = ml.to_json()
    guests = facts.guests.guests if facts.guests is not None else ()
    limits = {g.pid: g for g in facts.guest_limits} if guests else {}
    rows, short = [], []
    for guest in guests:
        ram, got = _guest_ram_kb(guest), limits.get(guest.pid)
        rows.append({"pid": guest.pid, "name": guest.name, "vfio": guest.vfio, "ram_kb": ram,
                     "soft_kb": got.soft_kb if got else None, "hard_kb": got.hard_kb if got else None})
        if guest.vfio and got and _below(got.soft_kb, ram):
            short.append(f"{guest.name} (pid {guest.pid}) pins {_size(ram)} with a limit of {_size(got.soft_kb)}")
    data["guests"] = rows
    largest = max((r["ram_kb"] for r in rows), default=None)
    session = ml.session
    user_limit = session.soft_kb if session else ml.service.soft_kb
    source = session.source if session else ml.service.source
    who = f"{ml.user} gets" if ml.user else "services get"
    stated = f"{who} {_size(user_limit)} ({source})"
    if ml.user and session is None:
        stated = f"{ml.user}: no limits.conf line; services get {_size(ml.service.soft_kb)} ({ml.service.source})"
    if short:
        return Check("memlock", WARN, TITLE, "; ".join(short), _hint(ml.user, largest), data)
    if largest and _below(user_limit, largest):
        return Check("memlock", WARN, TITLE,
                     f"{stated}: below the {_size(largest)} the largest running guest would pin with a "
                     "device assigned", _hint(ml.user, largest), data)
    if user_limit == UNLIMITED:
        return Check("memlock", PASS, TITLE, stated, None, data)
    if largest:
        return Check("memlock", PASS, TITLE, f"{stated}: enough for the largest running guest ({_size(largest)})",
                     None, data)
    return Check("memlock", INFO, TITLE,
                 f"{stated}: a VFIO guest pins all its RAM, so only guests up to that size can take a "
                 "device unless the VMM raises it (libvirt does for <hostdev>)", _hint(ml.user, None), data)
