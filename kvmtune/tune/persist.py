"""What makes a profile survive a reboot, in the places the ecosystem reads at boot.

- sysctls (and the default-size pool total, as vm.nr_hugepages) in a sysctl.d
  drop-in that sorts last, applied by systemd-sysctl early in boot;
- sysfs knobs (KSM, THP, other pool sizes, per-node pools) as ``w`` lines in a
  systemd-tmpfiles drop-in, written at boot by systemd-tmpfiles-setup, before
  libvirtd starts;
- hugetlbfs mounts in /etc/fstab (a minimal, marked edit);
- kernel arguments (``boot: true`` pools, CPU isolation) in the BLS entries or a
  /etc/default/grub.d drop-in (it needs update-grub and a reboot); on a host with neither
  (probe.boot_loader), nothing is written: each group is left to the operator, ``blocked``.

Every line is made from values the profile validation held to kvmtune.grammar.
"""

from __future__ import annotations

from kvmtune.probe.ksm import KSM_DIR
from kvmtune.probe.thp import THP_DIR
from kvmtune.probe.hugepages import size_label
from kvmtune.tune.bls import plan_bls
from kvmtune.tune.by_hand import plan_by_hand
from kvmtune.tune.change import BLOCKED, NOW, PENDING, REBOOT
from kvmtune.tune.cpus import SYSTEMD_DETAIL, MaskChange, boot_args as cpu_boot_args, systemd_text
from kvmtune.tune.files import HEADER, FileChange, wanted
from kvmtune.tune.fstab import FstabChange, fstab_text, foreign_entries
from kvmtune.tune.ksm import ordered_knobs
from kvmtune.tune.mounts import MountChange
from kvmtune.tune.pools import PoolChange, boot_pool_args
from kvmtune.tune.power import PowerChange
from kvmtune.tune.sysctl import dropin_text, restore_line, split_optional
from kvmtune.tune.sections import section

GRUB_DETAIL = "kernel command line: run 'update-grub' (or grub2-mkconfig), then reboot"


def plan_files(profile, facts, changes, warnings: list[str], modprobe: str | None = None, split=None,
               boot_groups=()) -> list:
    default_kb = facts.hugepages.default_size_kb
    sysctls = {name: value for name, (value, _) in profile.sysctl.items()}
    tmpfiles: list[tuple[str, str]] = []
    groups: list[tuple[str, list[str]]] = []  # (what, kernel arguments) kept at boot
    pools = [c for c in changes if isinstance(c, PoolChange)]
    for size in sorted({c.size_kb for c in pools}, reverse=True):
        of_size = [c for c in pools if c.size_kb == size]
        per_node = [c for c in of_size if c.node is not None]
        if of_size[0].boot:
            targets = [(c.node, c.after) for c in per_node] or [(None, of_size[0].after)]
            groups.append((f"{size_label(size)} huge pages at boot", boot_pool_args(size, targets)))
        elif size == default_kb and not per_node:
            sysctls["vm.nr_hugepages"] = of_size[0].after
        else:
            tmpfiles += [(c.rel, c.after) for c in of_size]
    ksm = {k: v for k, (v, _) in profile.ksm.items()}
    tmpfiles += [(f"{KSM_DIR}/{k}", str(ksm[k])) for k in ordered_knobs(ksm)]
    tmpfiles += [(f"{THP_DIR}/{k}", v) for k, (v, _) in profile.thp.items()]
    # Runtime CPU settings at boot too (IRQs themselves follow irqaffinity= on the command line).
    tmpfiles += [(c.rel, c.after) for c in changes if isinstance(c, (MaskChange, PowerChange))]
    if split is not None:
        groups.append(("CPU isolation", cpu_boot_args(profile, split)))
    groups += boot_groups  # (what, arguments) other sections keep at boot (tune.iommu)
    boot_args = [a for _, args in groups for a in args]

    # A sysctl the journal holds an original for and no line here sets (an earlier profile's)
    # stays named, so rollback may restore it (tune.binding).
    kept = [n for n in facts.journaled_sysctls if n not in {split_optional(k)[0] for k in sysctls}]
    dropin = dropin_text(sysctls, HEADER) or (HEADER if kept else None)
    dropin = dropin + restore_line(kept) if dropin else None
    out = [own_file(facts, "sysctl", dropin, "sysctl settings at boot"),
           own_file(facts, "tmpfiles", _tmpfiles_text(tmpfiles), "sysfs knobs at boot")]
    if profile.hugetlbfs or "fstab" in facts.journaled:  # kvmtune's lines only by the journal's proof
        out.append(_fstab_change(facts, changes, warnings))
    loader = facts.boot_loader
    if facts.bls:  # the host boots BLS entries: the arguments go there, not into a GRUB drop-in
        out += plan_bls(facts.bls, boot_args)
        boot_args = []
    if boot_args and loader is not None and not loader.editable:
        # A drop-in no boot loader reads would report success and change nothing at boot.
        out += plan_by_hand(groups, facts, warnings)
    else:
        out.append(own_file(facts, "grub", _grub_text(boot_args), GRUB_DETAIL, REBOOT))
    out.append(own_file(facts, "modprobe", modprobe, "module options (KVM, vfio-pci): from the next module load (reboot)",
                        REBOOT))
    out.append(own_file(facts, "systemd", systemd_text(profile, split, HEADER) if split else None, SYSTEMD_DETAIL,
                        REBOOT))
    return [c for c in out if not (c.before is None and c.after is None)]


def own_file(facts, file_id: str, text: str | None, detail: str, when: str = NOW) -> FileChange:
    current = facts.files.get(file_id)
    after = wanted(text)
    change = FileChange(file_id, current, after, missing=facts.file_dirs.get(file_id, ()) if after else (),
                        when=when, detail=detail)
    if change.status == PENDING and current is not None and after is not None:
        # verify names what someone else put in kvmtune's file.
        foreign = [l for l in current.text.split("\n") if l not in after.text.split("\n")]
        if foreign:
            change.detail += f"; {len(foreign)} line(s) kvmtune would not have written: {foreign[0][:80]!r}"
    return change


def _tmpfiles_text(lines: list[tuple[str, str]]) -> str | None:
    if not lines:
        return None
    # Type w: write the argument to the file at boot; "-" leaves mode, owner and age alone.
    return HEADER + "".join(f"w /{rel} - - - - {value}\n" for rel, value in lines)


def _grub_text(args: list[str]) -> str | None:
    if not args:
        return None
    return HEADER + f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {" ".join(args)}"\n'


def _fstab_change(facts, changes, warnings: list[str]) -> FstabChange:
    current = facts.fstab
    # Without a journal record the file as it is now is the original: no line in it is kvmtune's.
    proof = facts.journaled["fstab"] if "fstab" in facts.journaled else current
    mounts = [(c.path, c.after) for c in changes if isinstance(c, MountChange) and c.status != BLOCKED]
    # A path fstab already mounts with a line kvmtune did not write is left to that line.
    foreign = foreign_entries(current, {p for p, _ in mounts}, proof)
    if foreign:
        warnings.append(f"/etc/fstab already mounts {', '.join(foreign)} with a line kvmtune does not own: "
                        "kvmtune leaves that line as it is (check its options against the profile's)")
    owned = [m for m in mounts if m[0] not in foreign]
    return FstabChange(current, fstab_text(current, owned, proof), owned, proof, detail="hugetlbfs mounts at boot")


def _read(host, profile, persist: bool, out: dict) -> None:
    """kvmtune's own files (never through a link) and fstab (through its link, inside the root),
    read as rollback reads them; the boot entries; the journaled originals of the shared files."""
    if not persist:
        return
    from kvmtune.host.owned import OWNED_FILES
    from kvmtune.probe.boot_loader import read_boot_loader
    from kvmtune.tune.bls import read_entries

    out.update(FileChange.read_rollback(host, [(fid, {"file": fid}) for fid in OWNED_FILES]))
    out.update(FstabChange.read_rollback(host, []))
    out["bls"] = read_entries(host)
    out["journaled"] = _journaled(host)
    out["boot_loader"] = read_boot_loader(host)


def _journaled(host) -> dict:
    """The journaled originals of the files kvmtune shares: only they prove which lines are its own."""
    from kvmtune.tune.journal import load

    journal = load(host)
    return {} if journal is None else {k: r["original"] for k, r in journal.records.items()
                                       if r["type"] in ("fstab", "irqbalance")}


def _plan(profile, facts, ctx) -> list:
    if ctx.persist:
        return plan_files(profile, facts, ctx.changes, ctx.warnings, ctx.shared.get("modprobe"),
                          ctx.shared.get("split"), ctx.shared.get("boot_groups", ()))
    if profile.kvm_modules or profile.cpus is not None or profile.boot:
        ctx.warnings.append("--no-persist: the kernel arguments, module options and systemd settings of cpus, boot and "
                            "kvm_modules apply only at boot, so they are not set")
    return []


section("files", order=90, reads=_read, plan=_plan)  # last but the warnings: it keeps every other at boot
