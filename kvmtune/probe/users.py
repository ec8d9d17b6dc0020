"""Users and groups, from the host's /etc/passwd and /etc/group (NSS on a live host), read once."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.host.door import Host
from kvmtune.grammar import digits


@record
class User:
    name: str
    uid: int
    gid: int
    groups: frozenset[int]


@record
class Accounts:
    """/etc/passwd and /etc/group as read once, and the --as-user user (NSS on a live host)."""

    users: dict  # name -> (uid, gid)
    groups: dict  # name -> (gid, members)
    extra: dict  # name -> (uid, gid, group ids): users found only through NSS

    def user(self, name: str) -> User | None:
        if name in self.users:
            uid, gid = self.users[name]
            ids = {g for g, members in self.groups.values() if name in members} | {gid}
            return User(name, uid, gid, frozenset(ids))
        if name in self.extra:
            uid, gid, ids = self.extra[name]
            return User(name, uid, gid, frozenset(ids))
        return None

    def group_id(self, name: str) -> int | None:
        found = self.groups.get(name)
        return found[0] if found else None

    def group_name(self, gid: int) -> str | None:
        return next((n for n, (g, _) in self.groups.items() if g == gid), None)


def _table(text: str, fields: int) -> list[list[str]]:
    return [f for f in (line.split(":") for line in text.splitlines()) if len(f) >= fields and digits(f[2])]


def read_accounts(host: Host, as_user: str | None = None) -> Accounts:
    users = {f[0]: (int(f[2]), int(f[3])) for f in _table(host.read_optional("etc/passwd") or "", 4)
             if digits(f[3])}
    groups = {f[0]: (int(f[2]), tuple(m for m in f[3].split(",") if m)) for f in
              _table(host.read_optional("etc/group") or "", 4)}
    extra = {}
    if as_user and as_user not in users and host.live:
        found = host.nss_user(as_user)
        if found:
            extra[as_user] = (found[0], found[1], tuple(sorted(found[2])))
    return Accounts(users, groups, extra)
