"""sysctl settings: validate names against /proc/sys, plan the writes, write the drop-in.

A name is dotted (``vm.swappiness``) and maps to proc/sys/vm/swappiness. Names
that try to leave /proc/sys (``..``, ``/``, empty parts) are refused outright:
the profile is input, and input never picks a path.
"""

from __future__ import annotations

from kvmtune.plan import Change, knob_change

PROC_SYS = "proc/sys"
DROPIN = "etc/sysctl.d/99-zz-kvmtune.conf"  # sorts after Debian's 99-sysctl.conf and 99-protect-links
# systemd-sysctl applies these in lexicographic order of file name, whatever the directory.
SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")


def sysctl_rel(name: str) -> str | None:
    """``vm.swappiness`` -> ``proc/sys/vm/swappiness``; None for names that leave /proc/sys."""
    parts = name.split(".")
    if not name or any(p in ("", "..", ".") or "/" in p or "\x00" in p for p in parts):
        return None
    return f"{PROC_SYS}/" + "/".join(parts)


def plan_sysctl(profile, host) -> list[Change]:
    changes = []
    for name, (value, node) in profile.sysctl.items():
        rel = sysctl_rel(name)
        if rel is None:
            raise node.error("not a sysctl name: use dotted words such as vm.swappiness "
                             "('..', '/' and empty parts are refused)")
        if name in ("vm.nr_hugepages", "vm.nr_overcommit_hugepages") and profile.hugepages:
            raise node.error("set huge pages in the hugepages section, not both")
        if host.read_optional(rel) is None:
            raise node.error(f"no such sysctl on this host (/{rel} does not exist)")
        changes.append(knob_change(host, f"sysctl {name}", rel, value))
    return changes


def dropin_text(settings: dict[str, str]) -> str | None:
    if not settings:
        return None
    lines = ["# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file."]
    lines += [f"{k} = {v}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def later_overrides(host, settings: dict[str, str]) -> list[str]:
    """Warnings for files that systemd-sysctl applies after ours and set our keys differently."""
    ours = DROPIN.rsplit("/", 1)[1]
    seen: dict[str, str] = {}
    for d in SYSCTL_DIRS:
        for entry in host.listdir(d):
            if entry.endswith(".conf") and entry not in seen:
                seen[entry] = f"{d}/{entry}"
    warnings = []
    for entry in sorted(seen):
        if entry <= ours:
            continue
        text = host.read_optional(seen[entry]) or ""
        for key, value in parse_conf(text).items():
            norm = key.replace("/", ".")
            if norm in settings and " ".join(value.split()) != " ".join(str(settings[norm]).split()):
                warnings.append(f"/{seen[entry]} sets {norm} = {value} and is applied after kvmtune's "
                                f"/{DROPIN} at boot: it wins")
    return warnings


def parse_conf(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lstrip("-")] = value.strip()
    return out
