"""sysctl settings: read the profile's keys, plan the writes, write the drop-in's text.

A name is dotted (``vm.swappiness``) and maps to proc/sys/vm/swappiness; names and
values were held to kvmtune.grammar when the profile was validated, and a journal's
names are held to it again before rollback writes anything.
"""

from __future__ import annotations

from kvmtune.grammar import sysctl_name_problem
from kvmtune.tune.knob import KnobChange
from kvmtune.tune.registry import Field, grammar, kind
from kvmtune.tune.sections import section

PROC_SYS = "proc/sys"
DROPIN = "etc/sysctl.d/99-zz-kvmtune.conf"  # sorts after Debian's 99-sysctl.conf and 99-protect-links
# systemd-sysctl applies these in lexicographic order of file name, whatever the directory.
SYSCTL_DIRS = ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d")
RESERVED = ("vm.nr_hugepages", "vm.nr_overcommit_hugepages")
# A comment in kvmtune's sealed files naming the sysctls whose originals the journal holds and
# no setting line names: the binding (tune.binding) lets rollback restore them.
RESTORES = "# kvmtune restores on rollback: "


def sysctl_rel(name: str) -> str:
    """``vm.swappiness`` -> ``proc/sys/vm/swappiness`` (name already held to the grammar)."""
    return f"{PROC_SYS}/" + name.replace(".", "/")


def split_optional(key: str) -> tuple[str, bool]:
    """``-kernel.numa_balancing`` -> (kernel.numa_balancing, True): systemd-sysctl's mark for a
    key that may be missing on some kernels (sysctl.d(5))."""
    return (key[1:], True) if key.startswith("-") else (key, False)


@kind
class SysctlChange(KnobChange):
    KIND, ORDER = "sysctl", 10
    FIELDS = (Field("name", grammar(sysctl_name_problem), "a sysctl name"),)
    __slots__ = ("name",)

    def __init__(self, name: str, before, after, status=None, detail=""):
        self.name = name
        super().__init__(before, after, status, detail)

    target = property(lambda self: f"sysctl {self.name}")
    rel = property(lambda self: sysctl_rel(self.name))


# -- read and plan ----------------------------------------------------------------

def read_sysctl(host, names) -> dict[str, str | None]:
    """Current values of the named sysctls (None: this kernel lacks it)."""
    out = {}
    for name in names:
        raw = host.read_exact_optional(sysctl_rel(name))  # exact: rollback writes back these bytes
        out[name] = None if raw is None else raw.strip()
    return out


MAX_NAMES = 65536  # /proc/sys holds a few thousand names, net's per-device copies included


def read_sysctl_names(host) -> tuple[str, ...]:
    """Every sysctl name under /proc/sys, dotted: read only when a profile names one that is
    absent, to say which name was meant."""
    out: list[str] = []
    todo = [PROC_SYS]
    while todo and len(out) < MAX_NAMES:
        rel = todo.pop()
        for entry in host.listdir(rel):
            path = f"{rel}/{entry}"
            if host.is_dir(path):
                if path.count("/") < 10:
                    todo.append(path)
            else:
                out.append(path[len(PROC_SYS) + 1:].replace("/", "."))
    return tuple(out)


def documented_sysctls() -> frozenset[str]:
    """The names the kernel's Documentation/admin-guide/sysctl documents (kvmtune/data, made by
    scripts/make_sysctl_names.py)."""
    from kvmtune.shipped import load_data

    return frozenset(load_data("sysctl_documented.json")["names"])


def absent_hint(name: str, known) -> str:
    """What to say of a sysctl this host lacks. A name the kernel documents may be missing on
    some kernels: '-' (skip where absent) fits it. Any other name is most likely a typo, and
    '-' would turn the typo into a setting silently skipped: name the nearest one instead."""
    if name in documented_sysctls():
        return (f"the kernel documents it, but this kernel lacks it; write '-{name}' to skip it "
                "where it is missing")
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    if close:
        return f"did you mean '{close[0]}'?"
    return "the kernel's sysctl documentation does not name it either: check the spelling"


def read_later_files(host) -> dict[str, str]:
    """sysctl.d files that systemd-sysctl applies after kvmtune's drop-in: path -> text."""
    ours = DROPIN.rsplit("/", 1)[1]
    seen: dict[str, str] = {}
    for d in SYSCTL_DIRS:
        for entry in host.listdir(d):
            if entry.endswith(".conf") and entry not in seen:
                seen[entry] = f"{d}/{entry}"
    return {seen[e]: host.read_optional(seen[e]) or "" for e in sorted(seen) if e > ours}


def not_captured(facts, rel: str) -> bool:
    """A path absent from a captured tree that the capture did not look for: unknown, not absent."""
    return facts.capture is not None and rel not in facts.capture


def plan_sysctl(profile, facts, warnings: list[str]) -> list[SysctlChange]:
    changes = []
    for key, (value, node) in profile.sysctl.items():
        name, optional = split_optional(key)
        if name in RESERVED and profile.hugepages:
            raise node.error("set huge pages in the hugepages section, not both")
        current = facts.sysctl.get(name)
        if current is None and not_captured(facts, sysctl_rel(name)):
            # A tree may be a snapshot that did not capture it: say that, not that the kernel lacks it.
            if optional:
                warnings.append(f"sysctl {name} is not in this snapshot: skipped (marked optional with '-')")
                continue
            raise node.error(f"not in this snapshot (/{sysctl_rel(name)} was not captured; 'kvmtune snapshot' "
                             "captures every shipped profile's sysctls)")
        if current is None:
            if optional:
                warnings.append(f"sysctl {name} does not exist on this kernel: skipped (marked optional with '-')")
                continue
            raise node.error(f"no such sysctl on this host (/{sysctl_rel(name)} does not exist); "
                             + absent_hint(name, facts.sysctl_names))
        changes.append(SysctlChange(name, current, value))
    return changes


def dropin_text(settings: dict[str, str], header: str) -> str | None:
    if not settings:
        return None
    # "-key" stays: systemd-sysctl skips it where the kernel lacks it.
    return header + "".join(f"{k} = {v}\n" for k, v in settings.items())


def restore_line(names) -> str:
    """The comment naming sysctls rollback restores ('' for none); names held to the grammar."""
    return f"{RESTORES}{' '.join(sorted(set(names)))}\n" if names else ""


def restored_names(text: str) -> set[str]:
    """The names of every restore line in a text (the caller checks kvmtune's seal over it)."""
    return {name for line in text.split("\n") if line.startswith(RESTORES)
            for name in line[len(RESTORES):].split()}


def read_journaled(host) -> tuple[str, ...]:
    """The sysctls whose originals kvmtune's journal holds (a validated journal, or none)."""
    from kvmtune.tune.journal import load

    journal = load(host)
    return () if journal is None else tuple(sorted(
        r["name"] for r in journal.records.values() if r["type"] == SysctlChange.KIND))


def later_overrides(later: dict[str, str], settings: dict[str, str]) -> list[str]:
    """Warnings for files that systemd-sysctl applies after ours and set our keys differently."""
    plain = {split_optional(k)[0]: v for k, v in settings.items()}
    warnings = []
    for path, text in later.items():
        for key, value in parse_conf(text).items():
            norm = key.replace("/", ".")
            if norm in plain and " ".join(value.split()) != " ".join(str(plain[norm]).split()):
                warnings.append(f"/{path} sets {norm} = {value} and is applied after kvmtune's "
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


def _read(host, profile, persist: bool, out: dict) -> None:
    out["sysctl"] = read_sysctl(host, [split_optional(k)[0] for k in profile.sysctl])
    if None in out["sysctl"].values():  # for "did you mean": what this host does have
        out["sysctl_names"] = read_sysctl_names(host)
    out["journaled_sysctls"] = read_journaled(host)
    if not persist:
        from kvmtune.tune.files import FileChange

        out.update(FileChange.read_rollback(host, [("runtime", {"file": "runtime"})]))


def _plan(profile, facts, ctx) -> list:
    changes = plan_sysctl(profile, facts, ctx.warnings)
    if ctx.persist:  # the drop-in names them (tune.persist)
        return changes
    # --no-persist: no drop-in names what this run sets, so kvmtune's runtime file does, written
    # before the first sysctl so that a killed run leaves every journaled name bound.
    from kvmtune.tune.change import PENDING
    from kvmtune.tune.files import HEADER, FileChange, wanted

    setting = {c.name for c in changes if c.status == PENDING}
    current = facts.files.get("runtime")
    if not setting and current is None:  # nothing to name, nothing to keep
        return changes
    after = wanted(HEADER + restore_line(setting | set(facts.journaled_sysctls)))
    runtime = FileChange("runtime", current, after, missing=facts.file_dirs.get("runtime", ()),
                         detail="the sysctls set until reboot, for rollback")
    return [runtime, *changes]


section("sysctl", order=10, reads=_read, plan=_plan)
