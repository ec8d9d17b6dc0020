"""What binds a journal record to what apply wrote, checked before rollback writes anything.

A journal is root-writable data: on its own it must not make rollback write, say,
kernel.core_pattern. A sysctl record is bound when kvmtune's own sysctl drop-in (or the temp
file a killed write of it left) sets the sysctl, when a restore line under kvmtune's seal in
that drop-in or in its runtime file (run/kvmtune/runtime-sysctls, written by --no-persist,
cleared at reboot with the runtime values) names it, or when a shipped profile sets it. A checksum in
the journal would bind nothing: whoever writes the file can recompute it.
"""

from __future__ import annotations

from kvmtune.errors import HostError


def hold_unbound(host, plan) -> None:
    """Mark ``blocked`` every sysctl a rollback plan would write that nothing but the journal
    asks for; the record is kept (rollback forgets only what is back) and the detail says how
    to restore it by hand. A journal is root-writable data: alone it must not make rollback
    write kernel.core_pattern. Bound are the sysctls kvmtune's own drop-in sets (or its temp
    file, left by a killed write), those a restore line under kvmtune's seal names (in the
    drop-in or the runtime file), and those a shipped profile sets."""
    from kvmtune.tune.change import BLOCKED, PENDING
    from kvmtune.tune.sysctl import SysctlChange

    asked = [c for c in plan.changes if isinstance(c, SysctlChange) and c.status == PENDING]
    bound = bound_sysctls(host) if asked else set()
    for c in asked:
        if c.name not in bound:
            c.status = BLOCKED
            c.detail = (f"not restored: neither kvmtune's drop-in, its runtime file nor a shipped profile names "
                        f"{c.name}, so the journal alone may not ask for it; if {c.shown(c.after)!r} is right: sysctl -w {c.name}=VALUE")


def bound_sysctls(host) -> set[str]:
    from kvmtune.errors import KvmtuneError
    from kvmtune.host import owned
    from kvmtune.profile import load_profile, shipped_profiles
    from kvmtune.tune.files import is_ours
    from kvmtune.tune.sysctl import DROPIN, parse_conf, restored_names, split_optional

    names: set[str] = set()
    runtime = owned.OWNED_FILES["runtime"]
    for rel in (DROPIN, owned.temp_name(DROPIN), runtime, owned.temp_name(runtime)):
        try:
            found = host.read_file_state(rel)
        except HostError:
            continue
        if found is None:
            continue
        if rel in (DROPIN, owned.temp_name(DROPIN)):
            names.update(split_optional(k)[0].replace("/", ".") for k in parse_conf(found.text))
        if is_ours(found):  # a restore line counts only under kvmtune's seal
            names.update(restored_names(found.text))
    for path in shipped_profiles().values():
        try:
            names.update(split_optional(k)[0] for k in load_profile(path).sysctl)
        except KvmtuneError:
            continue
    return names
