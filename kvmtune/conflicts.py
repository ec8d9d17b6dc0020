"""Other owners of the same knobs: warn, naming the culprit, before they undo our work.

ksmtuned rewrites run, pages_to_scan and sleep_millisecs every 60 s; tuned
re-applies its profile and /etc/sysctl.d; a later sysctl.d file wins at boot; a
``transparent_hugepage=`` or ``hugepages=`` on the kernel command line wins over
anything set at run time.
"""

from __future__ import annotations

from kvmtune.probe.system import cmdline_values
from kvmtune.sysctl import later_overrides

TUNED_DIRS = ("etc/tuned", "etc/tuned/profiles", "usr/lib/tuned", "usr/lib/tuned/profiles")


def find_conflicts(profile, host, facts) -> list[str]:
    warnings = []
    if profile.ksm:
        state = _service_state(host, "ksmtuned")
        if state:
            warnings.append(f"ksmtuned is {state} and rewrites KSM run, pages_to_scan and sleep_millisecs "
                            "every 60 s: 'systemctl disable --now ksmtuned'")
    warnings += _tuned(host, profile)
    settings = {k: v for k, (v, _) in profile.sysctl.items()}  # later_overrides drops the "-" mark
    warnings += later_overrides(host, settings)
    if profile.thp.get("enabled"):
        for value in cmdline_values(facts.cmdline, "transparent_hugepage"):
            warnings.append(f"the kernel command line sets transparent_hugepage={value} and the profile "
                            f"sets thp.enabled={profile.thp['enabled'][0]}: two owners of one knob; "
                            "remove the boot parameter (update-grub, reboot)")
    if profile.hugepages:
        words = [f"{k}={v}" for k, v in facts.cmdline if k in ("hugepages", "hugepagesz", "default_hugepagesz")]
        if words:
            warnings.append(f"the kernel command line reserves huge pages ({' '.join(words)}): the boot "
                            "pools and the profile's pools both apply; keep one owner")
    return warnings


def _service_state(host, name: str) -> str | None:
    for entry in host.listdir("proc"):
        if entry.isdigit() and (host.read_optional(f"proc/{entry}/comm") or "").strip() == name:
            return "running"
    if host.exists(f"etc/systemd/system/multi-user.target.wants/{name}.service"):
        return "enabled"
    return None


def _tuned(host, profile) -> list[str]:
    active = (host.read_optional("etc/tuned/active_profile") or "").split()
    if not active or not _service_state(host, "tuned"):
        return []
    touched = set()
    ours = set(profile.sysctl) | ({"ksm"} if profile.ksm else set()) | ({"thp"} if profile.thp else set())
    for name in active:
        for d in TUNED_DIRS:
            text = host.read_optional(f"{d}/{name}/tuned.conf")
            if text is None:
                continue
            for line in text.splitlines():
                key = line.split("=", 1)[0].strip()
                if key in profile.sysctl or f"-{key}" in profile.sysctl:
                    touched.add(key)
                if "ksm" in ours and "sys/kernel/mm/ksm" in line:
                    touched.add("ksm")
                if "thp" in ours and key.startswith("transparent_hugepage"):
                    touched.add("thp")
            break
    if not touched:
        return []
    return [f"tuned profile '{' '.join(active)}' also sets {', '.join(sorted(touched))} and re-applies "
            "it when tuned restarts: remove those settings from it, or stop tuned"]
