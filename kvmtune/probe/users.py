"""Users and groups, from the host's /etc/passwd and /etc/group (NSS on a live host)."""

from __future__ import annotations

from kvmtune.record import record

from kvmtune.host import Host


@record
class User:
    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def parse_passwd(text: str, name: str) -> tuple[int, int] | None:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
            return int(fields[2]), int(fields[3])
    return None


def parse_group_ids(text: str, name: str) -> set[int]:
    """Groups that list ``name`` as a member."""
    out = set()
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit() and name in fields[3].split(","):
            out.add(int(fields[2]))
    return out


def group_id(host: Host, group: str) -> int | None:
    for line in (host.read_optional("etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == group and fields[2].isdigit():
            return int(fields[2])
    return None


def group_name(host: Host, gid: int) -> str | None:
    for line in (host.read_optional("etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2] == str(gid):
            return fields[0]
    return None


def read_user(host: Host, name: str) -> User | None:
    found = parse_passwd(host.read_optional("etc/passwd") or "", name)
    if found:
        uid, gid = found
        groups = parse_group_ids(host.read_optional("etc/group") or "", name) | {gid}
        return User(name, uid, gid, frozenset(groups))
    if host.live:
        nss = host.nss_user(name)
        if nss:
            return User(name, nss[0], nss[1], frozenset(nss[2]))
    return None
