"""Kernel arguments as they are configured for the next boot, beside the running kernel's.

kvmtune persists its arguments in its GRUB drop-in (/etc/default/grub.d/90-kvmtune.cfg);
other tools set theirs in /etc/default/grub and the other drop-ins. Comparing them with
/proc/cmdline says whether a reboot is pending and whether someone else's setting
contradicts kvmtune's.
"""

from __future__ import annotations

import shlex

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

    def to_json(self) -> dict:
        return {"kvmtune": list(self.kvmtune), "others": [{"file": "/" + f, "arg": w} for f, w in self.others],
                "problems": list(self.problems)}


def _words(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        for var in VARIABLES:
            if line.startswith(var + "="):
                try:
                    value = shlex.split(line.partition("=")[2])
                except ValueError:
                    continue
                out += [w for part in value for w in part.split() if not w.startswith("$")]
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
    return BootArgs(tuple(_words(own or "")), tuple(others), tuple(problems))
