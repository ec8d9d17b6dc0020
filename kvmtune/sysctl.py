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


def split_optional(key: str) -> tuple[str, bool]:
    """``-kernel.numa_balancing`` -> (kernel.numa_balancing, True): systemd-sysctl's mark for a
    key that may be missing on some kernels (sysctl.d(5))."""
    return (key[1:], True) if key.startswith("-") else (key, False)


def plan_sysctl(profile, host, warnings: list[str] | None = None) -> list[Change]:
    changes = []
    for key, (value, node) in profile.sysctl.items():
        name, optional = split_optional(key)
        rel = sysctl_rel(name)
        if rel is None:
            raise node.error("not a sysctl name: use dotted words such as vm.swappiness "
                             "('..', '/' and empty parts are refused)")
        if name in ("vm.nr_hugepages", "vm.nr_overcommit_hugepages") and profile.hugepages:
            raise node.error("set huge pages in the hugepages section, not both")
        if host.read_optional(rel) is None:
            if optional:
                if warnings is not None:
                    warnings.append(f"sysctl {name} does not exist on this kernel: skipped (marked optional with '-')")
                continue
            raise node.error(f"no such sysctl on this host (/{rel} does not exist); "
                             f"write '-{name}' if it may be missing on some kernels")
        changes.append(knob_change(host, f"sysctl {name}", rel, value))
    return changes


def dropin_text(settings: dict[str, str]) -> str | None:
    if not settings:
        return None
    lines = ["# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file."]
    lines += [f"{k} = {v}" for k, v in settings.items()]  # "-key" stays: systemd-sysctl skips it if missing
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
        plain = {split_optional(k)[0]: v for k, v in settings.items()}
        for key, value in parse_conf(text).items():
            norm = key.replace("/", ".")
            if norm in plain and " ".join(value.split()) != " ".join(str(plain[norm]).split()):
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
