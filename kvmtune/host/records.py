"""What the host layer hands back besides text: a file's type and owner, a file kvmtune
writes as found, a mount point as found. Immutable records (see kvmtune.record)."""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from kvmtune.record import record

LINK_REFUSED = "is a symbolic link: kvmtune writes nothing through a link"


def reason(exc: OSError) -> str:
    """An OSError as the host layer reports it."""
    if exc.errno == _errno.ELOOP:
        return LINK_REFUSED
    return exc.strerror or type(exc).__name__


@record
class FileStat:
    """What a probe may know about a file: type, mode, owner and device numbers."""

    mode: int
    uid: int
    gid: int
    rdev: int = 0

    @property
    def is_char_device(self) -> bool:
        return _stat.S_ISCHR(self.mode)

    @property
    def device(self) -> tuple[int, int] | None:
        """(major, minor) of a device node, None for anything else."""
        if _stat.S_ISCHR(self.mode) or _stat.S_ISBLK(self.mode):
            return os.major(self.rdev), os.minor(self.rdev)
        return None

    @property
    def kind(self) -> str:
        for test, name in ((_stat.S_ISREG, "regular file"), (_stat.S_ISDIR, "directory"),
                           (_stat.S_ISCHR, "character device"), (_stat.S_ISBLK, "block device"),
                           (_stat.S_ISFIFO, "FIFO"), (_stat.S_ISSOCK, "socket"), (_stat.S_ISLNK, "link")):
            if test(self.mode):
                return name
        return "unknown file type"

    @property
    def perm(self) -> int:
        return _stat.S_IMODE(self.mode)


@record
class FileState:
    """A file kvmtune writes, as found: its text and what must survive a rewrite."""

    text: str
    mode: int
    uid: int
    gid: int

    def to_json(self) -> dict:
        return {"text": self.text, "mode": self.mode, "uid": self.uid, "gid": self.gid}


@record
class PathState:
    """A directory kvmtune would mount on or create, as found (nothing followed)."""

    link: str | None  # the first component that is a symbolic link
    missing: tuple[str, ...]  # components to create, outermost first
    is_dir: bool  # the path itself exists and is a directory
    entries: int  # what is in it now (a mount on a non-empty directory hides it)
    blocker: str | None = None  # a component that exists but is not a directory
