"""hugetlbfs mounts: plan them, compare with what the kernel shows, keep /etc/fstab.

The kernel accepts ``mount -o remount,size=...`` on hugetlbfs, returns 0, and
changes nothing (observed), so a mount whose options differ is only changed by
unmounting and mounting again, and only when nothing lives on it. /proc/mounts
shows options normalised (``pagesize=1G`` as ``1024M``, sizes in bytes, uid/gid
and mode only when not default), so both sides are normalised before comparing.
"""

from __future__ import annotations

from kvmtune.hugepages import parse_size_kb, size_label
from kvmtune.plan import BLOCKED, OK, PENDING, RESTART, Change
from kvmtune.probe.users import group_id, read_user

FSTAB = "etc/fstab"
MARK = "# kvmtune: managed entry, 'kvmtune rollback' removes it"
LIBVIRT_DAEMONS = (("usr/sbin/libvirtd", "libvirtd"), ("usr/sbin/virtqemud", "virtqemud"))


def wanted_options(req, host, facts) -> dict[str, str]:
    size_kb = req.pagesize_kb or facts.hugepages.default_size_kb
    if size_kb is None or facts.hugepages.pool(size_kb) is None:
        raise req.src.error(f"this host has no {size_label(size_kb) if size_kb else 'default'} huge page pool")
    opts = {"pagesize": f"{size_kb // 1024}M" if size_kb >= 1024 else f"{size_kb}K"}
    for key in ("size", "min_size"):
        value = getattr(req, key)
        if value is not None:
            opts[key] = value
    if req.mode != 0o755:
        opts["mode"] = f"{req.mode:o}"
    if req.owner is not None:
        user = read_user(host, req.owner) if not req.owner.isdigit() else None
        if user is None and not req.owner.isdigit():
            raise req.src.error(f"no user named '{req.owner}' on this host")
        opts["uid"] = req.owner if req.owner.isdigit() else str(user.uid)
    if req.group is not None:
        gid = int(req.group) if req.group.isdigit() else group_id(host, req.group)
        if gid is None:
            raise req.src.error(f"no group named '{req.group}' on this host")
        opts["gid"] = str(gid)
    return {k: v for k, v in opts.items() if not (k in ("uid", "gid") and v == "0")}


def normalise(opts: dict, size_kb: int, pool_total: int) -> dict[str, int | str]:
    """Options as numbers, the way the kernel prints them, for comparison."""
    out: dict[str, int | str] = {"pagesize": size_kb}
    page_bytes = size_kb * 1024
    for key in ("size", "min_size"):
        value = opts.get(key)
        if value is None:
            continue
        if str(value).endswith("%"):
            # The kernel turns N% into bytes of the pool at mount time, rounded to pages.
            value = pool_total * int(str(value)[:-1]) // 100 * page_bytes
        out[key] = int(value) // page_bytes * page_bytes
    out["mode"] = int(str(opts.get("mode", "755")), 8)
    out["uid"] = int(opts.get("uid") or 0)
    out["gid"] = int(opts.get("gid") or 0)
    return out


def plan_mounts(profile, host, facts, warnings: list[str]) -> list[Change]:
    if not profile.hugetlbfs:
        return []
    mounts = {m.target: m for m in facts.mounts}
    pools = {p.size_kb: p.total or 0 for p in facts.hugepages.pools}
    restart = [name for path, name in LIBVIRT_DAEMONS if host.exists(path)]
    changes = []
    for req in profile.hugetlbfs:
        opts = wanted_options(req, host, facts)
        size_kb = parse_size_kb(opts["pagesize"])
        after = ",".join(f"{k}={v}" for k, v in opts.items())
        meta = {"path": req.path, "options": after, "mode": req.mode, "restart": restart}
        current = mounts.get(req.path)
        if current is None:
            changes.append(Change(f"hugetlbfs {req.path}", "mount", None, None, after, RESTART, PENDING,
                                  "new mount" + (f": restart {' or '.join(restart)} to use it" if restart else ""),
                                  meta))
            continue
        before = ",".join(f"{k}={v}" for k, v in current.options.items() if v is not None)
        if current.fstype != "hugetlbfs":
            changes.append(Change(f"hugetlbfs {req.path}", "mount", None, before, after, RESTART, BLOCKED,
                                  f"{req.path} is already a {current.fstype} mount", meta))
            continue
        have_kb = parse_size_kb(current.options.get("pagesize") or "") or facts.hugepages.default_size_kb
        have = normalise(current.options, have_kb or 0, pools.get(have_kb, 0))
        want = normalise(opts, size_kb, pools.get(size_kb, 0))
        if have == want:
            changes.append(Change(f"hugetlbfs {req.path}", "mount", None, before, after, RESTART, OK, "", meta))
            continue
        busy = host.listdir(req.path.lstrip("/"))
        if busy:
            changes.append(Change(
                f"hugetlbfs {req.path}", "mount", None, before, after, RESTART, BLOCKED,
                f"options differ but {len(busy)} files are on it, and the kernel ignores remount "
                "options for hugetlbfs: stop the guests using it, then apply again", meta))
            continue
        meta["remount"] = True
        changes.append(Change(f"hugetlbfs {req.path}", "mount", None, before, after, RESTART, PENDING,
                              "options differ and the mount is empty: unmount and mount again", meta))
    return changes


def fstab_text(current: str | None, mounts: list[tuple[str, str]]) -> str | None:
    """/etc/fstab with kvmtune's entries replaced by ``mounts`` [(path, options)].

    Every other line, comment and blank is kept in place; ours are appended,
    each under a marker comment, so the edit is minimal and reversible.
    """
    kept = list(_foreign_lines(current))
    for path, options in mounts:
        kept += [MARK, f"hugetlbfs {path} hugetlbfs {options} 0 0"]
    if current is None and not mounts:
        return None
    return "\n".join(kept) + ("\n" if kept else "")


def _foreign_lines(current: str | None):
    """The lines of /etc/fstab that kvmtune does not own (its own: a marker and the next line)."""
    skip_next = False
    for line in (current or "").splitlines():
        if skip_next:
            skip_next = False
        elif line == MARK:
            skip_next = True
        else:
            yield line


def foreign_fstab_entries(current: str | None, paths: set[str]) -> list[str]:
    """Paths that /etc/fstab already mounts with a line kvmtune does not own."""
    out = []
    for line in _foreign_lines(current):
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and fields[1] in paths:
            out.append(fields[1])
    return out
