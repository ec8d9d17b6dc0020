"""Kernel arguments as they are configured for the next boot, beside the running kernel's.

kvmtune persists its arguments in its GRUB drop-in (/etc/default/grub.d/90-kvmtune.cfg);
other tools set theirs in /etc/default/grub and the other drop-ins. Comparing them with
/proc/cmdline says whether a reboot is pending and whether someone else's setting
contradicts kvmtune's.
"""

from __future__ import annotations

from kvmtune.errors import HostError
from kvmtune.probe.system import read_noting
from kvmtune.record import record

KVMTUNE_DROPIN = "etc/default/grub.d/90-kvmtune.cfg"
GRUB_FILES = ("etc/default/grub",)
VARIABLES = ("GRUB_CMDLINE_LINUX", "GRUB_CMDLINE_LINUX_DEFAULT")


@record
class BootArgs:
    kvmtune: tuple  # kvmtune's arguments (key=value words)
    others: tuple  # (file, word) set by other files
    problems: tuple = ()
    # grub: kvmtune's drop-in (needs update-grub); unread: kvmtune's drop-in on a host whose boot loader
    # does not read it (no GRUB); bls: the entries; None: no arguments
    where: str | None = "grub"
    loader: str | None = None  # with "unread": what was found instead of GRUB

    def to_json(self) -> dict:
        return {"kvmtune": list(self.kvmtune), "others": [{"file": "/" + f, "arg": w} for f, w in self.others],
                "where": self.where, "problems": list(self.problems),
                **({"loader": self.loader} if self.loader else {})}


def _words(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        for var in VARIABLES:
            if line.startswith(var + "="):
                # One quoted word, as these files write it (no shlex: it costs check 5 ms to import).
                value = line.partition("=")[2].strip().strip("\"'")
                out += [w for w in value.split() if not w.startswith("$")]
    return out


def read_boot_args(host) -> BootArgs:
    problems = []
    try:
        own = host.read_optional(KVMTUNE_DROPIN)
    except HostError as exc:
        own, problems = None, [f"/{KVMTUNE_DROPIN}: {exc.reason}"]
    others = []
    rels = list(GRUB_FILES) + sorted(f"etc/default/grub.d/{e}" for e in host.listdir("etc/default/grub.d")
                                     if e.endswith(".cfg") and f"etc/default/grub.d/{e}" != KVMTUNE_DROPIN)
    for rel in rels:
        others += [(rel, w) for w in _words(read_noting(host, rel, problems) or "")]
    mine = _words(own or "")
    if mine:
        from kvmtune.probe.boot_loader import read_boot_loader

        loader = read_boot_loader(host)  # only here: a host with no drop-in pays nothing for it
        if loader.kind == "grub":
            return BootArgs(tuple(mine), tuple(others), tuple(problems))
        return BootArgs(tuple(mine), tuple(others), tuple(problems), "unread", loader.evidence)
    added = _bls_added(host, problems)
    return BootArgs(tuple(added), tuple(others), tuple(problems), "bls" if added else None)


def _options(text: str) -> list[str]:
    return next((l.split()[1:] for l in text.splitlines() if l.split(None, 1)[:1] == ["options"]), [])


def _bls_added(host, problems: list[str]) -> list[str]:
    """On a BLS host, kvmtune's arguments are what its journal shows it added to the entries:
    each entry's options now, less the original the journal keeps (its records held to their
    grammar by the journal's read-only view)."""
    from kvmtune.tune.journal import read_records

    records, problem = read_records(host, ("bls",))
    if problem:
        problems.append(problem)
    if not records:
        return []
    from kvmtune.host.owned import BLS_DIR

    added: list[str] = []
    for item in records:
        current = host.read_optional(f"{BLS_DIR}/{item['entry']}") or ""
        original = _options(item["original"] or "")
        added += [w for w in _options(current) if w not in original and w not in added]
    return added
