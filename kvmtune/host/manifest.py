"""A snapshot's manifest (kvmtune-snapshot.json): the device nodes a copied tree cannot hold.

Read by HostReads.manifest(); every field is held to its type and range before a Host
trusts it, since a manifest is input like any other file of a snapshot.
"""

from __future__ import annotations

# What a device node's fields can be (stat(2), Linux's 12-bit major and 20-bit minor numbers):
# anything else is not a capture, and would reach os.makedev() as an overflow.
NODE_FIELDS = {"mode": 0o177777, "uid": (1 << 32) - 1, "gid": (1 << 32) - 1, "major": (1 << 12) - 1,
               "minor": (1 << 20) - 1}


def checked_manifest(text: str) -> dict:
    """The manifest's device nodes, each field of the right type and range (ValueError otherwise)."""
    import base64
    import binascii

    from kvmtune.fastjson import loads

    data = loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("nodes", {}), dict):
        raise ValueError("not a manifest")
    for rel, node in data.get("nodes", {}).items():
        if not isinstance(node, dict) or any(not isinstance(node.get(k), int) or isinstance(node.get(k), bool)
                                             or not 0 <= node[k] <= top for k, top in NODE_FIELDS.items()):
            raise ValueError("a node's numbers")
        xattrs = node.get("xattrs", {})
        if not isinstance(xattrs, dict) or not all(isinstance(v, str) and v.isascii() for v in xattrs.values()):
            raise ValueError("a node's xattrs")
        try:
            for value in xattrs.values():
                base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("a node's xattrs") from None
    links = data.get("links", {})  # link -> its target (kvmtune snapshot keeps links here, not in the tree)
    if not isinstance(links, dict) or not all(isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 4096
                                              and "\0" not in v for k, v in links.items()):
        raise ValueError("a link's target")
    return data
