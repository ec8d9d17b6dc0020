"""What makes a profile survive a reboot, in the places the ecosystem reads at boot.

- sysctls (and the default-size pool total, as vm.nr_hugepages) in a sysctl.d
  drop-in that sorts last, applied by systemd-sysctl early in boot;
- sysfs knobs (KSM, THP, other pool sizes, per-node pools) as ``w`` lines in a
  systemd-tmpfiles drop-in, written at boot by systemd-tmpfiles-setup, before
  libvirtd starts;
- hugetlbfs mounts in /etc/fstab (a minimal, marked edit);
- boot-only pools (``boot: true``) on the kernel command line through a
  /etc/default/grub.d drop-in: it needs update-grub and a reboot.
"""

from __future__ import annotations

from kvmtune import hugetlbfs, sysctl
from kvmtune.ksm import KSM_DIR, ordered_knobs
from kvmtune.plan import OK, PENDING, REBOOT, BLOCKED, NOW, Change
from kvmtune.thp import THP_DIR

TMPFILES = "etc/tmpfiles.d/kvmtune.conf"
GRUB_DROPIN = "etc/default/grub.d/90-kvmtune.cfg"
HEADER = "# Written by kvmtune apply; 'kvmtune rollback' removes it. Edit the profile, not this file.\n"


def plan_files(profile, host, facts, changes: list[Change]) -> list[Change]:
    default_kb = facts.hugepages.default_size_kb
    sysctls = {name: value for name, (value, _) in profile.sysctl.items()}
    tmpfiles: list[tuple[str, str]] = []
    boot_args: list[str] = []
    pools = [c for c in changes if c.kind == "pool"]
    for size in sorted({c.meta["size_kb"] for c in pools}, reverse=True):
        of_size = [c for c in pools if c.meta["size_kb"] == size]
        per_node = [c for c in of_size if c.meta["node"] is not None]
        if of_size[0].meta["boot"]:
            label = _boot_size(size)
            count = ",".join(f"{c.meta['node']}:{c.after}" for c in per_node) if per_node else of_size[0].after
            boot_args += [f"hugepagesz={label}", f"hugepages={count}"]
        elif size == default_kb and not per_node:
            sysctls["vm.nr_hugepages"] = of_size[0].after
        else:
            tmpfiles += [(c.rel, c.after) for c in of_size]
    ksm = {k: v for k, (v, _) in profile.ksm.items()}
    tmpfiles += [(f"{KSM_DIR}/{k}", str(ksm[k])) for k in ordered_knobs(ksm)]
    tmpfiles += [(f"{THP_DIR}/{k}", v) for k, (v, _) in profile.thp.items()]

    out = [file_change(host, sysctl.DROPIN, sysctl.dropin_text(sysctls), "sysctl settings at boot")]
    out.append(file_change(host, TMPFILES, _tmpfiles_text(tmpfiles), "sysfs knobs at boot"))
    fstab = _fstab_change(host, profile, changes)
    if profile.hugetlbfs or (fstab.before and hugetlbfs.MARK in fstab.before):
        out.append(fstab)
    grub = file_change(host, GRUB_DROPIN, _grub_text(boot_args),
                       "kernel command line: run 'update-grub' (or grub2-mkconfig), then reboot")
    grub.when = REBOOT
    out.append(grub)
    return [c for c in out if not (c.before is None and c.after is None)]


def file_change(host, rel: str, text: str | None, detail: str) -> Change:
    current = host.read_optional(rel)
    return Change(f"/{rel}", "file", rel, current, text, NOW, OK if current == text else PENDING, detail)


def _tmpfiles_text(lines: list[tuple[str, str]]) -> str | None:
    if not lines:
        return None
    # Type w: write the argument to the file at boot; "-" leaves mode, owner and age alone.
    return HEADER + "".join(f"w /{rel} - - - - {value}\n" for rel, value in lines)


def _grub_text(args: list[str]) -> str | None:
    if not args:
        return None
    return HEADER + f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {" ".join(args)}"\n'


def _boot_size(size_kb: int) -> str:
    return f"{size_kb >> 20}G" if size_kb % (1 << 20) == 0 else f"{size_kb >> 10}M"


def _fstab_change(host, profile, changes: list[Change]) -> Change:
    current = host.read_optional(hugetlbfs.FSTAB)
    mounts = [(c.meta["path"], c.meta["options"]) for c in changes if c.kind == "mount" and c.status != BLOCKED]
    foreign = hugetlbfs.foreign_fstab_entries(current, {p for p, _ in mounts})
    change = file_change(host, hugetlbfs.FSTAB, hugetlbfs.fstab_text(current, [m for m in mounts if m[0] not in foreign]),
                         "hugetlbfs mounts at boot")
    if foreign:
        change.status = BLOCKED if change.status == PENDING else change.status
        change.detail = f"/etc/fstab already mounts {', '.join(foreign)} with a line kvmtune does not own"
    if change.after == current:
        change.status = OK if not foreign else change.status
    return change
