"""hugetlbfs mounts: plan them against what the kernel shows, mount, unmount, remount back.

The kernel accepts ``mount -o remount,size=...`` on hugetlbfs, returns 0, and changes
nothing (observed), so a mount whose options differ is only changed by unmounting and
mounting again, and only when nothing lives on it. /proc/mounts shows options
normalised (``pagesize=1G`` as ``1024M``, sizes in bytes, uid/gid and mode only when
not default), so both sides are normalised before comparing. A mount point must be a
real directory path (no link anywhere on it) that is empty: a mount hides what is below.
"""

from __future__ import annotations

from kvmtune.errors import HostError, Refused
from kvmtune.grammar import digits, mount_path_problem
from kvmtune.probe.hugepages import parse_size_kb, size_label
from kvmtune.tune.change import BLOCKED, CHANGED, FAILED, OK, PENDING, PENDING_RESTART, RESTART, Change
from kvmtune.tune.knob import refused
from kvmtune.tune.registry import Field, grammar, kind
from kvmtune.tune.sections import section

LIBVIRT_DAEMONS = (("usr/sbin/libvirtd", "libvirtd"), ("usr/sbin/virtqemud", "virtqemud"))
# What mount(2) takes for hugetlbfs (Documentation/admin-guide/mm/hugetlbpage.rst).
OPTIONS = ("pagesize", "size", "min_size", "nr_inodes", "mode", "uid", "gid")


def option_text(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items() if k in OPTIONS and v is not None)


def mounted_at(host, path: str):
    from kvmtune.probe.system import parse_mounts

    return next((m for m in parse_mounts(host.read_optional("proc/mounts") or "") if m.target == path), None)


@kind
class MountChange(Change):
    """A hugetlbfs mount to make (after: options), remake, or remove (after: None)."""

    KIND, ORDER = "mount", 30
    FIELDS = (Field("path", grammar(mount_path_problem), "a path kvmtune mounts on"),)
    when = RESTART
    __slots__ = ("path", "mode", "missing", "restart", "remount")

    def __init__(self, path: str, before, after, *, mode: int = 0o755, missing=(), restart=(),
                 remount: bool = False, status=None, detail=""):
        self.path, self.mode, self.missing, self.restart, self.remount = path, mode, tuple(missing), tuple(restart), remount
        super().__init__(before, after, status, detail)

    @staticmethod
    def equal(current, wanted) -> bool:
        return current == wanted

    target = property(lambda self: f"hugetlbfs {self.path}")

    def planned_dirs(self) -> tuple[str, ...]:
        return self.missing

    @staticmethod
    def parse_original(value):
        import re

        if value is not None and (not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_=,.%:-]{0,512}", value)):
            raise ValueError(f"mount options {value!r:.60} are not hugetlbfs options")
        return value

    @classmethod
    def parse_dirs(cls, identity: dict, dirs) -> None:
        rel = identity["path"].lstrip("/")
        if not isinstance(dirs, list) or any(not isinstance(d, str) or not (rel == d or rel.startswith(d + "/"))
                                             or mount_path_problem("/" + d, parent=True) for d in dirs):
            raise ValueError(f"mount dirs {dirs!r} are not the path's own")

    @classmethod
    def read_rollback(cls, host, entries) -> dict:
        from kvmtune.probe.system import read_mounts

        return {"mounts": tuple(read_mounts(host) or ()),
                "paths": {r["path"]: host.path_state(r["path"].lstrip("/")) for _, r in entries}}

    @classmethod
    def restore(cls, entries, facts, warnings) -> list:
        return [plan_mount_restore(r, facts) for _, r in sorted(entries, key=lambda e: e[1]["path"])]

    def execute(self, host, ctx) -> None:
        try:
            now = mounted_at(host, self.path)
            if now is not None and (self.after is None or not self.remount and self.before is None):
                if self.after is None:
                    self._unmount(host)
                    return
                self.status, self.detail = FAILED, "mounted by something else since the plan"
                return
            if now is not None and self.remount:
                if host.listdir(self.path.lstrip("/")):
                    self.status, self.detail = BLOCKED, "files appeared on it since the plan: stop the guests using it"
                    return
                host.umount(self.path)
            if self.after is None:
                self._remove_dirs(host)
                self.status = CHANGED
                return
            for d in self.missing:
                host.mkdir(d, self.mode if d == self.path.lstrip("/") else 0o755)
            host.mount("hugetlbfs", self.path, self.after)
            if mounted_at(host, self.path) is None:
                self.status, self.detail = FAILED, "mount returned success but /proc/mounts does not show it"
                return
        except HostError as exc:
            self.status, self.detail = FAILED, refused(exc)
            return
        self.status = PENDING_RESTART if self.restart else CHANGED

    def _unmount(self, host) -> None:
        host.umount(self.path)
        self._remove_dirs(host)
        self.status = CHANGED

    def _remove_dirs(self, host) -> None:
        for d in reversed(self.missing):
            host.rmdir(d)

    def undo(self, host) -> None:
        if mounted_at(host, self.path) is not None:
            host.umount(self.path)
        self._remove_dirs(host)
        if self.before is not None:
            host.mount("hugetlbfs", self.path, self.before)


# -- plan ---------------------------------------------------------------------------

def wanted_options(req, facts) -> dict[str, str]:
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
    for key, kind, name in (("uid", "user", req.owner), ("gid", "group", req.group)):
        if name is None:
            continue
        ident = int(name) if digits(name) else facts.accounts.get((kind, name))
        if ident is None:
            raise req.src.error(f"no {kind} named '{name}' on this host")
        opts[key] = str(ident)
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


def mount_point_refusal(path: str, state) -> str | None:
    """Why kvmtune will not mount on this path as it is now (None: it may)."""
    if state.link:
        return f"/{state.link} is a symbolic link: kvmtune mounts only on real directories"
    if state.blocker:
        return f"/{state.blocker} exists and is not a directory"
    if state.entries:
        return f"{path} is not empty ({state.entries} entries): a mount would hide them"
    return None


def plan_mounts(profile, facts) -> list[MountChange]:
    if not profile.hugetlbfs:
        return []
    mounts = {m.target: m for m in facts.mounts}
    pools = {p.size_kb: p.total or 0 for p in facts.hugepages.pools}
    changes = []
    for req in profile.hugetlbfs:
        opts = wanted_options(req, facts)
        size_kb = parse_size_kb(opts["pagesize"])
        after = option_text(opts)
        state = facts.paths[req.path]
        common = dict(mode=req.mode, restart=facts.daemons)
        current = mounts.get(req.path)
        if current is None:
            refusal = mount_point_refusal(req.path, state)
            if refusal:
                raise Refused(f"hugetlbfs mount {req.path}: {refusal}")
            restart = f": restart {' or '.join(facts.daemons)} to use it" if facts.daemons else ""
            changes.append(MountChange(req.path, None, after, missing=state.missing, status=PENDING,
                                       detail="new mount" + restart, **common))
            continue
        before = option_text(current.options)
        if current.fstype != "hugetlbfs":
            changes.append(MountChange(req.path, before, after, status=BLOCKED,
                                       detail=f"{req.path} is already a {current.fstype} mount", **common))
            continue
        if state.link:
            raise Refused(f"hugetlbfs mount {req.path}: /{state.link} is a symbolic link")
        have_kb = parse_size_kb(current.options.get("pagesize") or "") or facts.hugepages.default_size_kb
        have = normalise(current.options, have_kb or 0, pools.get(have_kb, 0))
        want = normalise(opts, size_kb, pools.get(size_kb, 0))
        if have == want:
            changes.append(MountChange(req.path, before, after, status=OK, **common))
        elif state.entries:
            changes.append(MountChange(req.path, before, after, status=BLOCKED, detail=(
                f"options differ but {state.entries} files are on it, and the kernel ignores remount "
                "options for hugetlbfs: stop the guests using it, then apply again"), **common))
        else:
            changes.append(MountChange(req.path, before, after, remount=True, status=PENDING,
                                       detail="options differ and the mount is empty: unmount and mount again",
                                       **common))
    return changes


def plan_mount_restore(record: dict, facts) -> MountChange:
    """Rollback of one journaled mount: remove it, or put its original options back. The
    directories made for it go with every other record's, deepest first (tune.created_dirs)."""
    path, original = record["path"], record.get("original")
    current = next((m for m in facts.mounts if m.target == path), None)
    before = option_text(current.options) if current is not None else None
    state = facts.paths.get(path)
    if original is None:
        if current is None:
            return MountChange(path, None, None, status=OK)
        return MountChange(path, before, None, status=PENDING, detail="unmounted")
    if current is not None and before == original:
        return MountChange(path, before, original, status=OK)
    if state is not None and state.entries:
        return MountChange(path, before, original, status=BLOCKED,
                           detail=f"{state.entries} files are on it: stop the guests using it, then roll back")
    return MountChange(path, before, original, remount=current is not None, status=PENDING,
                       detail="original options put back")


def _read(host, profile, persist: bool, out: dict) -> None:
    if not profile.hugetlbfs:
        return
    out["paths"] = {m.path: host.path_state(m.path.lstrip("/")) for m in profile.hugetlbfs}
    out["accounts"] = _accounts(host, profile)
    out["daemons"] = tuple(name for path, name in LIBVIRT_DAEMONS if host.exists(path))


def _accounts(host, profile) -> dict:
    from kvmtune.probe.users import read_accounts

    out = {}
    accounts = read_accounts(host)
    for m in profile.hugetlbfs:
        if m.owner is not None and not digits(m.owner):
            user = accounts.user(m.owner) or (read_accounts(host, m.owner).user(m.owner) if host.live else None)
            out[("user", m.owner)] = user.uid if user else None
        if m.group is not None and not digits(m.group):
            out[("group", m.group)] = accounts.group_id(m.group)
    return out


section("mounts", order=30, reads=_read, plan=lambda profile, facts, ctx: plan_mounts(profile, facts))
