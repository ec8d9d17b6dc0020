"""KVM module options, in an /etc/modprobe.d drop-in: they apply when the module is next loaded.

Each parameter is checked against the module's own /sys/module/<module>/parameters on this
host (exit 2 naming the key for one it lacks); the vendor module the host does not use is
left out with a warning, so one profile serves Intel and AMD hosts.
"""

from __future__ import annotations

from kvmtune.tune.sections import section

MODPROBE_DETAIL = "KVM module options: take effect when the module is next loaded (a reboot for kvm itself)"


def modprobe_text(profile, facts, warnings: list[str], header: str) -> str | None:
    lines = []
    for module, params in profile.kvm_modules.items():
        present = facts.module_params.get(module)
        if present is None:
            warnings.append(f"kvm_modules.{module}: this host does not use {module}: its options are left out")
            continue
        for param, (_, node) in params.items():
            if param not in present:
                known = ", ".join(sorted(present)[:10]) + (" ..." if len(present) > 10 else "")
                where = "in this snapshot" if facts.capture is not None else "on this kernel"
                raise node.key_error(f"{module} has no parameter {param!r} {where} (it has: {known})")
        effective = [p for p, (v, _) in params.items() if not _same(present.get(p), v)]
        if effective:
            warnings.append(f"kvm_modules.{module}: {', '.join(effective)} differ from the loaded module's values "
                            "until it is reloaded")
        lines.append(f"options {module} " + " ".join(f"{p}={v}" for p, (v, _) in params.items()))
    return header + "\n".join(lines) + "\n" if lines else None


def _same(current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    flags = {"Y": "1", "N": "0", "y": "1", "n": "0"}
    return flags.get(current, current) == flags.get(wanted, wanted)


def _read(host, profile, persist: bool, out: dict) -> None:
    if not profile.kvm_modules:
        return
    from kvmtune.tune.facts import strip

    params = {}
    for module in profile.kvm_modules:
        base = f"sys/module/{module}/parameters"
        if not host.is_dir(f"sys/module/{module}"):
            continue
        params[module] = {p: strip(host.read_optional(f"{base}/{p}")) for p in host.listdir(base)}
    out["module_params"] = params


def _plan(profile, facts, ctx) -> list:
    # Its text goes into the files kept at boot (tune.persist), planned after every section.
    from kvmtune.tune.files import HEADER

    ctx.shared["modprobe"] = modprobe_text(profile, facts, ctx.warnings, HEADER) if profile.kvm_modules else None
    return []


section("kvm_modules", order=85, reads=_read, plan=_plan)
