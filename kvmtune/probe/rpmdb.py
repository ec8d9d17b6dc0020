"""Package versions from RPM's SQLite database (``/var/lib/rpm/rpmdb.sqlite``, RPM >= 4.16:
Fedora 33+, RHEL 9), read as a file through the Host and opened in memory: rpm is never run.

The older Berkeley DB format (``/var/lib/rpm/Packages``, RHEL 8) is not read: its versions stay
unknown. Transactions still only in ``rpmdb.sqlite-wal`` (not yet checkpointed) are not seen. Layouts from rpm's lib/backend/sqlite.c (the table ``Packages(hnum, blob)``; the index tables
are not relied on) and lib/header.c (a header blob: entry count and data length, 32-bit
big-endian, then 16-byte entries tag/type/offset/count, then the data).
"""

from __future__ import annotations

import struct

RPMDB = "var/lib/rpm/rpmdb.sqlite"
RPMDB_MAX = 512 << 20
TAG_NAME, TAG_VERSION = 1000, 1001
TYPE_STRING = 6


def header_strings(blob: bytes, tags=(TAG_NAME, TAG_VERSION)) -> dict[int, str]:
    """The string tags of an rpm header blob (NAME 1000, VERSION 1001: the upstream version);
    a damaged blob gives what it holds, never an exception."""
    out: dict[int, str] = {}
    if len(blob) < 8:
        return out
    count, length = struct.unpack_from(">ii", blob)
    data = 8 + 16 * count
    if count < 0 or length < 0 or data + length > len(blob):
        return out
    for i in range(count):
        tag, kind, offset, _ = struct.unpack_from(">iiii", blob, 8 + 16 * i)
        if tag in tags and kind == TYPE_STRING and 0 <= offset < length:
            end = blob.find(b"\0", data + offset, data + length)
            out[tag] = blob[data + offset:end if end >= 0 else data + length].decode("utf-8", "replace")
    return out


def rpm_versions(db: bytes, names: tuple[tuple[str, ...], ...]) -> list[str | None]:
    """For each group of package names, the version of the first one installed; an unreadable
    database gives None for every group (a damaged file is not a crash)."""
    import sqlite3  # only here: hosts with dpkg never pay its import

    data = bytearray(db)
    if data[:16] == b"SQLite format 3\0" and len(data) > 19:
        data[18] = data[19] = 1  # rpm keeps the file in WAL mode; in memory it is read as a rollback journal
    wanted = {name for group in names for name in group}
    found: dict[str, str] = {}
    try:
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(bytes(data))
            for (blob,) in conn.execute("SELECT blob FROM Packages"):
                tags = header_strings(bytes(blob))
                if tags.get(TAG_NAME) in wanted and tags.get(TAG_VERSION):
                    found[tags[TAG_NAME]] = tags[TAG_VERSION]
        finally:
            conn.close()
    except sqlite3.Error:
        return [None] * len(names)
    return [next((found[n] for n in group if n in found), None) for group in names]
