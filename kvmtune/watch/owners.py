"""Who changed a knob behind kvmtune's back, when it can be named: read, then judge.

The suspects the ecosystem has (issue #22, docs/peer-tuners): an active tuned profile that
sets the knob (tuned re-applies it on restart), a running ksmtuned (it rewrites KSM run,
pages_to_scan and sleep_millisecs every 60 s), irqbalance running without kvmtune's ban list
in its environment (it moves IRQs), a sysctl.d file that systemd-sysctl applies after
kvmtune's drop-in (or /etc/sysctl.conf, which procps' ``sysctl --system`` applies last), and
the kernel itself for a huge page pool that came up short after a boot. read_owners reads only
when something drifted; owner_of is pure.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from kvmtune.grammar import digits
from kvmtune.record import record

WATCHED = ("ksmtuned", "irqbalance", "tuned")
KSMTUNED_KNOBS = ("run", "pages_to_scan", "sleep_millisecs")
BAN = "IRQBALANCE_BANNED_CPULIST"


@record
class OwnerFacts:
    tuned: tuple = ()  # watch.tuned.TunedSetting of the active tuned profiles
    pids: dict = {}  # process name (WATCHED) -> pid
    irqbalance_ban: str | None = None  # IRQBALANCE_BANNED_CPULIST in the running irqbalance's environment
    sysctl_lines: tuple = ()  # (where "/path:line", name, value) of the files applied after kvmtune's
    booted: float | None = None  # the kernel's boot time (btime of /proc/stat), epoch seconds
    applied: float | None = None  # when the journal's last run started, epoch seconds


def read_owners(host, journal) -> OwnerFacts:
    from kvmtune.watch.tuned import read_tuned

    pids: dict[str, int] = {}
    if host.live:  # a snapshot's processes are not this machine's, and not running
        for entry in host.listdir("proc"):
            if digits(entry):
                comm = (host.read_optional(f"proc/{entry}/comm") or "").strip()
                if comm in WATCHED:
                    pids.setdefault(comm, int(entry))
    ban = None
    if "irqbalance" in pids:
        environ = host.read_bytes_optional(f"proc/{pids['irqbalance']}/environ") or b""
        for item in environ.split(b"\0"):
            if item.startswith(BAN.encode() + b"="):
                ban = item.split(b"=", 1)[1].decode("ascii", "replace")
    return OwnerFacts(read_tuned(host), pids, ban, _later_sysctl_lines(host), _boot_time(host), _started(journal))


def _later_sysctl_lines(host) -> tuple:
    from kvmtune.tune.sysctl import read_later_files

    files = dict(read_later_files(host))
    conf = host.read_optional("etc/sysctl.conf")
    if conf is not None:
        files["etc/sysctl.conf"] = conf  # procps' sysctl --system reads it after every sysctl.d file
    out = []
    for path, text in files.items():
        for n, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            key, sep, value = line.partition("=")
            if sep and line[0] not in "#;":
                out.append((f"/{path}:{n}", key.strip().lstrip("-").replace("/", "."), value.strip()))
    return tuple(out)


def _boot_time(host) -> float | None:
    for line in (host.read_optional("proc/stat") or "").split("\n"):
        if line.startswith("btime "):
            return float(line.split()[1]) if digits(line.split()[1]) else None
    return None


def _started(journal) -> float | None:
    started = journal.data["run"].get("started") if journal is not None else None
    if not isinstance(started, str):
        return None
    from datetime import datetime

    try:
        return datetime.strptime(started, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


# -- judge -------------------------------------------------------------------------

def owner_of(change, facts: OwnerFacts) -> str | None:
    """Who set this drifted target to what it is, in words; None where nobody can be named."""
    from kvmtune.tune.cpus import IrqChange
    from kvmtune.tune.irqbalance import IrqbalanceChange
    from kvmtune.tune.ksm import KsmChange
    from kvmtune.tune.pools import PoolChange
    from kvmtune.tune.sysctl import DROPIN, SysctlChange

    if isinstance(change, PoolChange):
        return _short_pool(change, facts)
    if isinstance(change, SysctlChange):
        # The last file systemd-sysctl applies that sets another value wins at boot.
        later = [(w, v) for w, name, v in facts.sysctl_lines if name == change.name and not change.equal(v, change.after)]
        if later:
            where, value = later[-1]
            return f"{where} sets {change.name} = {value}, applied after kvmtune's /{DROPIN}"
    if isinstance(change, KsmChange) and change.knob in KSMTUNED_KNOBS and "ksmtuned" in facts.pids:
        return (f"ksmtuned (pid {facts.pids['ksmtuned']}) rewrites KSM run, pages_to_scan and "
                "sleep_millisecs every 60 s")
    if isinstance(change, (IrqChange, IrqbalanceChange)) and "irqbalance" in facts.pids and not facts.irqbalance_ban:
        return (f"irqbalance (pid {facts.pids['irqbalance']}) runs without kvmtune's ban line ({BAN}): it moves IRQs"
                + ("; restart it" if isinstance(change, IrqbalanceChange) else ""))
    rel = getattr(change, "rel", None)
    # A setting of kvmtune's own value is no culprit (tuned's '>N' and 'a|b' forms count as others).
    tuned = [s for s in facts.tuned if rel and any(fnmatchcase(rel, p) for p in s.paths)
             and not change.equal(s.value, change.after)]
    if tuned:
        s = tuned[-1]  # the later profile wins
        return f"tuned profile '{s.profile}' ({s.where}: {s.text})"
    return None


def _short_pool(change, facts: OwnerFacts) -> str | None:
    """A pool below what kvmtune set, on a kernel booted since: the boot allocation fell short."""
    from kvmtune.probe.hugepages import size_label

    have, want = change.before, change.after
    if not (have and want and digits(have) and digits(want) and int(have) < int(want)):
        return None
    if facts.booted is None or facts.applied is None or facts.booted <= facts.applied:
        return None
    where = f" on node {change.node}" if change.node is not None else ""
    return f"the kernel: boot-time allocation got {have} of {want} {size_label(change.size_kb)} pages{where}"
