"""The one way into the host: every read, write, listing, device open and process.

A Host is rooted at a directory. Callers spell paths relative to that root
(``proc/meminfo``, ``sys/kernel/mm/ksm/run``) so that a probe reads a fixture
tree and the live machine alike, as lscpu's ``--sysroot`` does. ``/proc``,
``/sys``, ``/dev`` and ``/etc`` are rooted together.

A host rooted anywhere but ``/`` is a snapshot: it has no kernel behind it, so
ioctls, mounts and processes raise NotLive rather than touching the machine the
tool happens to run on (distro's rule: never mix live and rooted sources).
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat
from kvmtune.record import record

from kvmtune.errors import HostError, NotLive
from kvmtune.host_changes import HostChanges


@record
class FileStat:
    """What a probe may know about a file: type, mode and owner."""

    mode: int
    uid: int
    gid: int

    @property
    def is_char_device(self) -> bool:
        return _stat.S_ISCHR(self.mode)

    @property
    def perm(self) -> int:
        return _stat.S_IMODE(self.mode)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class Host(HostChanges):
    """A machine to read and change, rooted at ``root`` (``/`` is the live one)."""

    def __init__(self, root: str = "/", live: bool | None = None):
        self.root = os.path.abspath(root)
        self.live = (self.root == "/") if live is None else live

    def __repr__(self) -> str:
        return f"Host({self.root!r}, live={self.live})"

    # -- paths -------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The real path of ``rel``; refuses absolute paths and ``..`` parts."""
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"host paths are relative and stay inside the root: {rel!r}")
        return os.path.join(self.root, rel)

    # -- reading -----------------------------------------------------------

    def read(self, rel: str) -> str:
        """The whole text of a file; HostError (with errno) if it cannot be read."""
        # os.read is about twice as fast as open() for the many tiny sysfs files.
        try:
            fd = os.open(self.path(rel), os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunks = []
                while chunk := os.read(fd, 1 << 16):
                    chunks.append(chunk)
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None
        return b"".join(chunks).decode("utf-8", "replace")

    def read_optional(self, rel: str) -> str | None:
        """The text of a file, or None when the file is absent."""
        try:
            return self.read(rel)
        except HostError as exc:
            if exc.errno in (_errno.ENOENT, _errno.ENOTDIR):
                return None
            raise

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self.path(rel))

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries of a directory; [] when it is absent."""
        try:
            return sorted(os.listdir(self.path(rel)))
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def stat(self, rel: str) -> FileStat | None:
        try:
            st = os.stat(self.path(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None
        return FileStat(st.st_mode, st.st_uid, st.st_gid)

    def getxattr(self, rel: str, name: str) -> bytes | None:
        """An extended attribute (e.g. the POSIX ACL of /dev/kvm), None if unset."""
        try:
            return os.getxattr(self.path(rel), name)
        except OSError:
            return None

    # -- live-only ---------------------------------------------------------

    def require_live(self, what: str) -> None:
        if not self.live:
            raise NotLive(what)

    def access(self, rel: str, mode: int) -> bool:
        """Whether the invoking (real) user may use the file: the kernel decides."""
        self.require_live(rel)
        return os.access(self.path(rel), mode)

    def open_device(self, rel: str, flags: int = os.O_RDWR) -> int:
        """Open a device node for ioctls; the caller closes the descriptor."""
        self.require_live(rel)
        try:
            return os.open(self.path(rel), flags | os.O_CLOEXEC)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def kernel_log(self) -> list[str]:
        """The kernel's ring buffer (/dev/kmsg), message text only; [] if it may not be read."""
        self.require_live("dev/kmsg")
        try:
            fd = os.open(self.path("dev/kmsg"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return []  # dmesg_restrict without CAP_SYSLOG, or no /dev/kmsg
        lines = []
        try:
            while True:
                try:
                    record = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError:  # EPIPE: a record was overwritten while reading; go on
                    continue
                if not record:
                    break
                lines.append(record.decode("utf-8", "replace").partition(";")[2].rstrip("\n"))
        finally:
            os.close(fd)
        return lines

    @property
    def page_size(self) -> int:
        """Base page size; a snapshot is assumed x86-64 (4 KiB), the only arch we judge."""
        return os.sysconf("SC_PAGE_SIZE") if self.live else 4096

    def nss_user(self, name: str) -> tuple[int, int, set[int]] | None:
        """A user through NSS (LDAP, sssd...) on the live host: uid, gid, all group ids."""
        self.require_live(f"user {name}")
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid, set(os.getgrouplist(name, pw.pw_gid))
