"""Which PF's VF count is set again at boot, and by which file: udev rules keyed by the PF's PCI
address that assign ``sriov_numvfs`` (kvmtune's own 70-kvmtune-sriov.rules, or an operator's).

udev reads every *.rules file of /etc, /run and /usr/lib (and /lib) in one lexical order of
their names, and a file in /etc masks one of the same name in /run or /usr/lib, which masks
/lib (udev(7), "Rules Files"). The last assignment of a PF's count in that order wins.
Other ways to persist VFs (systemd-networkd's SR-IOVVirtualFunctions=, NetworkManager's
sriov.total-vfs, a vendor's unit) are not read: the check then says "not persisted by udev".
"""

from __future__ import annotations

import re

from kvmtune.record import record

RULE_DIRS = ("etc/udev/rules.d", "run/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d")
RULE_FILE = re.compile(r"[A-Za-z0-9._@+-]{1,200}\.rules")
MATCH = re.compile(r'\bKERNELS?=="([0-9a-fA-F]{4,5}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])"')
COUNT = re.compile(r'\bATTRS?\{sriov_numvfs\}="([0-9]{1,5})"')
MAX_RULES = 256 * 1024  # a rules file beyond this is not one an administrator wrote by hand


@record
class Persisted:
    count: int  # the VFs the rule asks for
    where: str  # "/etc/udev/rules.d/70-kvmtune-sriov.rules:3"


def parse_rules(text: str, path: str) -> dict[str, Persisted]:
    """PF address -> its count in this file (the last line that sets it)."""
    found = {}
    for number, line in enumerate(text.split("\n"), 1):
        if line.lstrip().startswith("#"):
            continue
        match, count = MATCH.search(line), COUNT.search(line)
        if match and count:
            found[match.group(1).lower()] = Persisted(int(count.group(1)), f"/{path}:{number}")
    return found


def read_sriov_persist(host) -> dict[str, Persisted]:
    """PF address -> the rule that sets its VF count at boot, with udev's masking and order."""
    files = {}
    for directory in reversed(RULE_DIRS):  # /etc last: it masks a same-named file elsewhere
        for name in host.listdir(directory):
            if RULE_FILE.fullmatch(name):
                files[name] = f"{directory}/{name}"
    persisted = {}
    for name in sorted(files):
        text = host.read_optional(files[name], MAX_RULES)
        if text and "sriov_numvfs" in text:
            persisted.update(parse_rules(text, files[name]))
    return persisted
