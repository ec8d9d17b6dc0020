"""What an active tuned profile sets, read from tuned's own files: to name tuned as a knob's owner.

tuned writes the profile names it runs to /etc/tuned/active_profile (several, stacked: the later
wins); each is /etc/tuned/NAME/tuned.conf or /usr/lib/tuned/NAME/tuned.conf (the /etc copy
wins; since tuned 2.23 both also under profiles/), an INI file whose ``[main] include=`` loads
other profiles first. Only the plugins that touch kvmtune's knobs are read: ``sysctl``,
``sysfs`` (paths with globs), ``vm`` (transparent_hugepages), ``cpu`` (governor, EPP) and
``scheduler`` (isolated_cores moves IRQs). Parsers take text.
"""

from __future__ import annotations

import re

from kvmtune.record import record

TUNED_DIRS = ("etc/tuned/profiles", "etc/tuned", "usr/lib/tuned/profiles", "usr/lib/tuned")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")
MAX_DEPTH = 16
THP = "sys/kernel/mm/transparent_hugepage"
CPUFREQ = "sys/devices/system/cpu/cpufreq/policy*"
# plugin -> option -> the kvmtune knob paths (globs) it writes
OPTIONS = {
    "vm": {"transparent_hugepages": (f"{THP}/enabled",), "transparent_hugepage": (f"{THP}/enabled",),
           "transparent_hugepage.defrag": (f"{THP}/defrag",)},
    "cpu": {"governor": (f"{CPUFREQ}/scaling_governor",),
            "energy_performance_preference": (f"{CPUFREQ}/energy_performance_preference",)},
    "scheduler": {"isolated_cores": ("proc/irq/*/smp_affinity_list", "proc/irq/default_smp_affinity"),
                  "default_irq_smp_affinity": ("proc/irq/default_smp_affinity",)},
}


@record
class TunedSetting:
    profile: str  # the active profile that brings it (maybe through an include)
    where: str  # /usr/lib/tuned/virtual-host/tuned.conf:12
    paths: tuple  # kvmtune knob paths (globs) it writes
    text: str  # the line as written: vm.swappiness=10
    value: str  # what it sets (tuned's own spelling: '>2048', 'a|b', '${var}' are kept as written)


def read_tuned(host) -> tuple[TunedSetting, ...]:
    """Every setting of the active tuned profiles that reaches kvmtune's knobs; () without tuned."""
    from kvmtune.tune.sysctl import sysctl_rel

    active = (host.read_optional("etc/tuned/active_profile") or "").split()
    out: list[TunedSetting] = []
    for name in active:
        for where, plugin, key, value, line in _profile_lines(host, name, set(), 0):
            paths = _paths(plugin, key, sysctl_rel)
            if paths:
                out.append(TunedSetting(name, where, paths, line, value))
    return tuple(out)


def _profile_lines(host, name: str, seen: set, depth: int):
    """(where, plugin, key, value, line) of a profile, its includes first (they lose to it)."""
    if not NAME.fullmatch(name) or name in seen or depth > MAX_DEPTH:
        return
    seen.add(name)
    for d in TUNED_DIRS:
        rel = f"{d}/{name}/tuned.conf"
        text = host.read_optional(rel)
        if text is not None:
            break
    else:
        return
    units = parse_tuned(text)
    for include in re.split(r"\s*[,;]\s*", units.get("main", {}).get("include", ("", 0, ""))[0].strip()):
        if include:
            yield from _profile_lines(host, include, seen, depth + 1)
    for section, options in units.items():
        plugin = options.get("type", (section, 0, ""))[0]
        for key, (value, lineno, line) in options.items():
            yield f"/{rel}:{lineno}", plugin, key, value, line


def parse_tuned(text: str) -> dict[str, dict[str, tuple[str, int, str]]]:
    """section -> option -> (value, line number, line), as tuned's ConfigParser reads it
    (``=`` the only delimiter, ``#`` comments, later options win)."""
    units: dict[str, dict] = {}
    current = None
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = units.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = (value.strip(), n, line)
    return units


def _paths(plugin: str, key: str, sysctl_rel) -> tuple:
    if plugin == "sysctl" and key not in ("type", "replace", "enabled", "devices", "priority"):
        from kvmtune.grammar import sysctl_name_problem

        return () if sysctl_name_problem(key) else (sysctl_rel(key.replace("/", ".")),)
    if plugin == "sysfs" and key[1:5] == "sys/" and key[0] == "/":  # an absolute path under /sys
        return (key[1:],)
    return OPTIONS.get(plugin, {}).get(key, ())
