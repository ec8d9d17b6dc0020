"""The vfio section's reads and planner: which devices go to vfio-pci, what is refused,
what is blocked, and the boot files (its change kind is tune.vfio's VfioBindChange).

Refused (exit 4, nothing written): a group holding a device the host needs or a device
in use, or a group whose safety cannot be judged because what the host needs could not
be read. Blocked (exit 0, the boot files still written): binding now where vfio-pci is
not on this kernel, the device has no IOMMU group, or it has no driver_override. With
--no-persist and every binding blocked nothing can be done: refused. An entry that names
no device on this host is bad input (exit 2, file:line:key).
"""

from __future__ import annotations

from kvmtune.errors import Refused
from kvmtune.pci import binding_lines, describe, group_of, matching, short, unsure_note
from kvmtune.probe.vfio_bind import ABSENT, DRIVER, LOADED, Binding
from kvmtune.tune.change import BLOCKED, OK, REBOOT
from kvmtune.tune.sections import section
from kvmtune.tune.vfio import VfioBindChange

LOAD_DETAIL = "vfio-pci loaded at every boot (modules-load.d)"
UDEV_DETAIL = ("vfio-pci takes these devices by address at boot (a udev rule: their ids are shared "
               "with a device the host keeps)")
NOTHING = "; nothing was changed"
VFIO_DIR = f"sys/bus/pci/drivers/{DRIVER}"


def read_vfio(host, profile, persist: bool, out: dict) -> None:
    if not profile.vfio:
        return
    from kvmtune.probe.pci import read_pci
    from kvmtune.probe.vfio_bind import read_vfio_bind

    pci = read_pci(host)
    chosen = [a for entry, _ in profile.vfio for a in matching(pci, entry)]
    addresses = list(dict.fromkeys(m for a in chosen for m in group_of(pci, a)))
    out["vfio"] = read_vfio_bind(host, pci, addresses, _journaled(host))


def _journaled(host) -> dict:
    """address -> the driver a device had before kvmtune bound it (the journal's word): its
    softdep line stays while vfio-pci holds the device."""
    from kvmtune.tune.journal import load

    journal = load(host)
    if journal is None:
        return {}
    return {r["address"]: (r["original"] or {}).get("driver") for r in journal.records.values()
            if r["type"] == VfioBindChange.KIND}


def plan_vfio(profile, facts, ctx) -> list:
    changes, modprobe, udev = [], [], []
    if profile.vfio:
        f = facts.vfio
        chosen = _chosen(profile, f, facts)
        taken = {}  # address -> the named device that takes it along
        for a in chosen:
            for m in group_of(f.pci, a):
                taken.setdefault(m, a)
        _refuse(f, taken)
        for a in f.boot_vga:  # not refused: a headless host runs on without it
            ctx.warnings.append(f"vfio: {short(a)} is the GPU the firmware booted on (boot_vga 1): the host's "
                                "console goes to the guest with it")
        for a in taken:
            why = _blocked(f, a, facts.capture)
            directory = f.dirs.get(a) or f"sys/bus/pci/devices/{a}"
            now, want = f.bindings.get(a), Binding(DRIVER, DRIVER)
            blocked = why is not None and now != want
            kept = "; the boot files are still written" if ctx.persist else ""
            change = VfioBindChange(a, directory, now, want, BLOCKED if blocked else None,
                                    f"binding now is blocked: {why}{kept}" if blocked else "")
            if not blocked and not f.live and now is not None and now.override == DRIVER:
                # A snapshot has no kernel to move the driver link: its driver_override is the binding.
                change.status, change.detail = OK, "snapshot: driver_override is vfio-pci (no kernel here rebinds)"
            changes.append(change)
        if not ctx.persist and all(c.status == BLOCKED for c in changes):
            raise Refused(f"vfio: {changes[0].address}: {changes[0].detail}; with --no-persist nothing is left "
                          f"to do{NOTHING}")
        modprobe, udev = binding_lines(f.pci, list(taken), f.original)
    if not ctx.persist:
        return changes
    from kvmtune.tune.files import HEADER
    from kvmtune.tune.persist import own_file

    if modprobe:  # into kvmtune's modprobe.d file, beside the KVM module options (tune.kvm_modules)
        ctx.shared["modprobe"] = (ctx.shared.get("modprobe") or HEADER) + "".join(f"{l}\n" for l in modprobe)
    files = [own_file(facts, "vfio-load", HEADER + f"{DRIVER}\n" if profile.vfio else None, LOAD_DETAIL, REBOOT),
             own_file(facts, "vfio-udev", HEADER + "".join(f"{l}\n" for l in udev) if udev else None, UDEV_DETAIL,
                      REBOOT)]
    return changes + [c for c in files if not (c.before is None and c.after is None)]


def _chosen(profile, f, facts) -> list[str]:
    where = "in this snapshot" if facts.capture is not None else "on this host"
    out = []
    for entry, node in profile.vfio:
        found = matching(f.pci, entry)
        if not found:
            raise node.error(f"no PCI device {entry} {where} (see 'kvmtune devices')")
        bridges = [a for a in found if f.pci.get(a).is_bridge]
        if bridges:
            raise node.error(f"{short(bridges[0])} is a PCI-to-PCI bridge: vfio-pci takes only endpoints "
                             "(header type 0)")
        out += [a for a in found if a not in out]
    return out


def _refuse(f, taken: dict) -> None:
    """Refused, naming the device asked for and what the host needs from its group."""
    for a, asked in taken.items():
        fn = f.pci.get(a)
        why = f.needs.needs.get(a)
        if why:
            what = (f"the host needs it for {' and '.join(why)}" if a == asked else
                    f"its IOMMU group {fn.iommu_group} holds {describe(fn, f.needs)}")
            raise Refused(f"vfio: {short(asked)}: {what}: binding it to vfio-pci would take that from the host"
                          + NOTHING)
        used = f.in_use.get(a)
        if used:
            whose = "" if a == asked else f" (in its IOMMU group {fn.iommu_group})"
            raise Refused(f"vfio: {short(asked)}: {short(a)}{whose} is in use: {'; '.join(used)}: "
                          f"stop using it first{NOTHING}")
    if f.needs.problems:
        raise Refused(f"vfio: {', '.join(short(a) for a in dict.fromkeys(taken.values()))}: kvmtune will not bind "
                      f"a group without knowing what the host needs{unsure_note(f.needs)}{NOTHING}")


def _blocked(f, address: str, capture) -> str | None:
    """Why binding ``address`` now cannot be done on this host (None: it can)."""
    release = f.release or "the running kernel"
    if f.vfio_pci == ABSENT and capture is not None and VFIO_DIR not in capture:
        return f"this snapshot did not capture /{VFIO_DIR}, so whether its kernel has vfio-pci is unknown"
    if f.vfio_pci == ABSENT:
        return (f"this kernel ({release}) has no vfio-pci: it is not built in and /lib/modules/{release} "
                "holds no vfio-pci module")
    if f.vfio_pci != LOADED:
        return "vfio-pci is a module this kernel has not loaded: 'modprobe vfio-pci', then apply again"
    if f.pci.get(address).iommu_group is None:
        return "no IOMMU group: vfio-pci binds only a device behind an IOMMU (turn the IOMMU on first)"
    if f.bindings.get(address) is None:
        return "no driver_override to bind it with (kernels before 3.16), or a driver name kvmtune would not write"
    return None


section("vfio", order=87, reads=read_vfio, plan=plan_vfio)
