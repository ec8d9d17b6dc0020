"""Device nodes QEMU needs (/dev/kvm, vhost-net, tun, vfio, sev) and who may open them."""

from __future__ import annotations

import struct
from kvmtune.record import record

from kvmtune.errors import HostError
from kvmtune.host.door import FileStat, Host

NODES = {
    "kvm": "dev/kvm",
    "vhost_net": "dev/vhost-net",
    "vhost_vsock": "dev/vhost-vsock",
    "tun": "dev/net/tun",
    "vfio": "dev/vfio/vfio",
    "sev": "dev/sev",
}
# The device numbers the kernel gives them (include/linux/miscdevice.h); /dev/sev's is dynamic.
NUMBERS = {"kvm": (10, 232), "vhost_net": (10, 238), "vhost_vsock": (10, 241), "tun": (10, 200),
           "vfio": (10, 196)}
# Modules whose presence explains a missing node (built in or loaded).
NODE_MODULES = {
    "vhost_net": ("vhost_net",),
    "vhost_vsock": ("vhost_vsock",),
    "tun": ("tun",),
    "vfio": ("vfio", "vfio_pci", "vfio_iommu_type1"),
}


@record
class DevNode:
    name: str
    path: str
    stat: FileStat | None
    acl: tuple[tuple[int, int, int], ...] | None  # (tag, perm, id) entries
    modules: tuple[str, ...]  # related modules present under /sys/module
    problem: str | None = None
    captured: bool = True  # False: a snapshot without /dev, where absence proves nothing

    @property
    def exists(self) -> bool:
        return self.stat is not None

    @property
    def wrong_kind(self) -> str | None:
        """Why what is there is not this device node (None: it is, or nothing is there)."""
        if self.stat is None:
            return None
        want = NUMBERS.get(self.name)
        if not self.stat.is_char_device:
            return f"a {self.stat.kind}, not a character device"
        if want and self.stat.device != want:
            return f"character device {self.stat.device[0]}:{self.stat.device[1]}, not {want[0]}:{want[1]}"
        return None

    def to_json(self) -> dict:
        return {
            "path": "/" + self.path,
            "exists": self.exists,
            "char_device": self.stat.is_char_device if self.stat else None,
            "device": list(self.stat.device) if self.stat and self.stat.device else None,
            "mode": f"{self.stat.perm:04o}" if self.stat else None,
            "uid": self.stat.uid if self.stat else None,
            "gid": self.stat.gid if self.stat else None,
            "acl": bool(self.acl),
            "modules": list(self.modules),
        }


def read_node(host: Host, name: str) -> DevNode:
    rel = NODES[name]
    modules = tuple(m for m in NODE_MODULES.get(name, ()) if host.exists(f"sys/module/{m}"))
    try:
        st = host.stat(rel)
    except HostError as exc:
        return DevNode(name, rel, None, None, modules, exc.reason)
    acl = parse_acl(host.getxattr(rel, "system.posix_acl_access")) if st else None
    captured = host.live or st is not None or host.is_dir("dev") or bool(host.manifest().get("nodes"))
    return DevNode(name, rel, st, acl, modules, captured=captured)


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 0x10, 0x20


def parse_acl(blob: bytes | None) -> tuple[tuple[int, int, int], ...] | None:
    """Decode the ``system.posix_acl_access`` xattr (version 2, 8-byte entries)."""
    if not blob or len(blob) < 4 or struct.unpack_from("<I", blob)[0] != 2:
        return None
    entries = []
    for off in range(4, len(blob) - 7, 8):
        tag, perm, ident = struct.unpack_from("<HHI", blob, off)
        entries.append((tag, perm, ident))
    return tuple(entries)


def can_read_write(node: DevNode, uid: int, gids: set[int]) -> bool:
    """POSIX access decision for read+write, with ACLs (acl(5) access check algorithm)."""
    st = node.stat
    if st is None:
        return False
    if uid == 0:
        return True
    want = 0o6
    if not node.acl:
        if uid == st.uid:
            bits = st.perm >> 6
        elif st.gid in gids:
            bits = st.perm >> 3
        else:
            bits = st.perm
        return bits & want == want
    mask = next((p for t, p, _ in node.acl if t == ACL_MASK), 0o7)
    if uid == st.uid:
        return next(p for t, p, _ in node.acl if t == ACL_USER_OBJ) & want == want
    for tag, perm, ident in node.acl:
        if tag == ACL_USER and ident == uid:
            return perm & mask & want == want
    group_hit = False
    for tag, perm, ident in node.acl:
        if (tag == ACL_GROUP_OBJ and st.gid in gids) or (tag == ACL_GROUP and ident in gids):
            group_hit = True
            if perm & mask & want == want:
                return True
    if group_hit:
        return False
    return next((p for t, p, _ in node.acl if t == ACL_OTHER), 0) & want == want
