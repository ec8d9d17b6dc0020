"""Other owners of the same knobs: warn, naming the culprit, before they undo our work.

ksmtuned rewrites run, pages_to_scan and sleep_millisecs every 60 s; tuned
re-applies its profile and /etc/sysctl.d; a later sysctl.d file wins at boot; a
``transparent_hugepage=`` or ``hugepages=`` on the kernel command line wins over
anything set at run time. read_owners gathers what is needed; find_conflicts judges.
"""

from __future__ import annotations

from kvmtune.probe.system import cmdline_values
from kvmtune.record import record
from kvmtune.tune.sysctl import later_overrides, read_later_files
from kvmtune.grammar import digits
from kvmtune.tune.sections import section

TUNED_DIRS = ("etc/tuned", "etc/tuned/profiles", "usr/lib/tuned", "usr/lib/tuned/profiles")


@record
class Owners:
    ksmtuned: str | None  # running / enabled / None
    tuned_active: tuple[str, ...]  # active tuned profiles, when tuned runs or is enabled
    tuned_confs: dict  # profile name -> tuned.conf text
    later_sysctl: dict  # sysctl.d files applied after kvmtune's: path -> text


def _service_state(host, name: str, comms: dict[str, str]) -> str | None:
    if name in comms.values():
        return "running"
    if host.exists(f"etc/systemd/system/multi-user.target.wants/{name}.service"):
        return "enabled"
    return None


def read_owners(host, profile) -> Owners:
    comms = {}
    tuned_profile = (host.read_optional("etc/tuned/active_profile") or "").split()
    if profile.ksm or profile.ksm_policy or tuned_profile:  # a process scan only when it can matter
        for entry in host.listdir("proc"):
            if digits(entry):
                comm = (host.read_optional(f"proc/{entry}/comm") or "").strip()
                if comm in ("ksmtuned", "tuned"):
                    comms[entry] = comm
    ksmtuned = _service_state(host, "ksmtuned", comms) if profile.ksm or profile.ksm_policy else None
    active: tuple[str, ...] = ()
    confs = {}
    if tuned_profile and _service_state(host, "tuned", comms):
        active = tuple(tuned_profile)
        for name in active:
            for d in TUNED_DIRS:
                text = host.read_optional(f"{d}/{name}/tuned.conf")
                if text is not None:
                    confs[name] = text
                    break
    later = read_later_files(host) if profile.sysctl else {}
    return Owners(ksmtuned, active, confs, later)


def find_conflicts(profile, facts) -> list[str]:
    owners = facts.owners
    warnings = []
    if (profile.ksm or profile.ksm_policy) and owners.ksmtuned:
        warnings.append(f"ksmtuned is {owners.ksmtuned} and rewrites KSM run, pages_to_scan and sleep_millisecs "
                        "every 60 s: 'systemctl disable --now ksmtuned'")
    warnings += _tuned(owners, profile)
    settings = {k: v for k, (v, _) in profile.sysctl.items()}  # later_overrides drops the "-" mark
    warnings += later_overrides(owners.later_sysctl, settings)
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


def _tuned(owners: Owners, profile) -> list[str]:
    touched = set()
    for text in owners.tuned_confs.values():
        for line in text.splitlines():
            key = line.split("=", 1)[0].strip()
            if key in profile.sysctl or f"-{key}" in profile.sysctl:
                touched.add(key)
            if (profile.ksm or profile.ksm_policy) and "sys/kernel/mm/ksm" in line:
                touched.add("ksm")
            if profile.thp and key.startswith("transparent_hugepage"):
                touched.add("thp")
    if not touched:
        return []
    return [f"tuned profile '{' '.join(owners.tuned_active)}' also sets {', '.join(sorted(touched))} and "
            "re-applies it when tuned restarts: remove those settings from it, or stop tuned"]


def _read(host, profile, persist: bool, out: dict) -> None:
    out["owners"] = read_owners(host, profile)


def _plan(profile, facts, ctx) -> list:
    ctx.warnings.extend(find_conflicts(profile, facts))
    return []


section("conflicts", order=99, reads=_read, plan=_plan)  # warnings only, over every section's plan
