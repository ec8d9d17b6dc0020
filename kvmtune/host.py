"""The one way into the host: every read, write, listing, device open and process.

A Host is rooted at a directory. Callers spell paths relative to that root
(``proc/meminfo``, ``sys/kernel/mm/ksm/run``) so that a probe reads a fixture
tree and the live machine alike, as lscpu's ``--sysroot`` does. ``/proc``,
``/sys``, ``/dev`` and ``/etc`` are rooted together.

In a snapshot, symbolic links are resolved inside the root: an absolute link
restarts at the root and ``..`` stops there, so ``proc -> /proc`` in a captured
tree never reads the machine kvmtune runs on. The live root is ``/``, where the
kernel's own resolution is already that.

A host rooted anywhere but ``/`` is a snapshot: it has no kernel behind it, so
ioctls, mounts and processes raise NotLive rather than touching the machine the
tool happens to run on (distro's rule: never mix live and rooted sources).
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from kvmtune.errors import HostError, NotLive
from kvmtune.host_changes import HostChanges, reason
from kvmtune.host_mounts import HostMounts
from kvmtune.record import record

MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup


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


class Host(HostChanges, HostMounts):
    """A machine to read and change, rooted at ``root`` (``/`` is the live one)."""

    def __init__(self, root: str = "/", live: bool | None = None):
        self.root = os.path.abspath(root)
        self.live = (self.root == "/") if live is None else live
        self._resolved: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Host({self.root!r}, live={self.live})"

    # -- paths -------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The path of ``rel`` as spelled; refuses absolute paths and ``..`` parts."""
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"host paths are relative and stay inside the root: {rel!r}")
        return os.path.join(self.root, rel)

    def resolve(self, rel: str, follow_last: bool = True) -> str:
        """``rel`` with its links resolved inside the root (see the module docstring)."""
        self.path(rel)
        if self.root == "/":
            return rel
        pending = rel.split("/")[::-1]  # a stack: the next component last
        done: list[str] = []
        hops = 0
        missing = False
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            if missing or (not pending and not follow_last):
                done.append(part)
                continue
            key = "/".join(done + [part])
            hit = self._resolved.get(key)
            if hit is not None:
                done = hit.split("/") if hit else []
                continue
            try:
                st = os.lstat(os.path.join(self.root, key))
            except OSError:  # absent or not searchable: the open that follows says which
                missing = True
                done.append(part)
                continue
            if _stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_LINKS:
                    raise HostError(rel, "too many levels of symbolic links", _errno.ELOOP)
                target = os.readlink(os.path.join(self.root, key))
                if target.startswith("/"):
                    done = []
                pending.extend(target.split("/")[::-1])
                continue
            done.append(part)
            self._resolved[key] = "/".join(done)
        return "/".join(done)

    def real(self, rel: str, follow_last: bool = True) -> str:
        """The file system path of ``rel``, resolved inside the root."""
        return os.path.join(self.root, self.resolve(rel, follow_last))

    # -- reading -----------------------------------------------------------

    def read(self, rel: str) -> str:
        """The whole text of a file; HostError (with errno) if it cannot be read."""
        # os.read is about twice as fast as open() for the many tiny sysfs files.
        try:
            fd = os.open(self.real(rel), os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunks = []
                while chunk := os.read(fd, 1 << 16):
                    chunks.append(chunk)
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        return b"".join(chunks).decode("utf-8", "replace")

    def read_optional(self, rel: str) -> str | None:
        """The text of a file, or None when the file is absent."""
        try:
            return self.read(rel)
        except HostError as exc:
            if exc.errno in (_errno.ENOENT, _errno.ENOTDIR):
                return None
            raise

    def read_file_state(self, rel: str) -> FileState | None:
        """A file kvmtune owns, read without following a link: None if absent, HostError
        (ELOOP) if it is a link, whose target is never read."""
        try:
            fd = os.open(self.real(rel, follow_last=False), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (_errno.ENOENT, _errno.ENOTDIR):
                return None
            raise HostError(rel, reason(exc), exc.errno) from None
        try:
            st = os.fstat(fd)
            if not _stat.S_ISREG(st.st_mode):
                raise HostError(rel, "not a regular file", _errno.EINVAL)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return FileState(b"".join(chunks).decode("utf-8", "replace"), _stat.S_IMODE(st.st_mode),
                         st.st_uid, st.st_gid)

    def path_state(self, rel: str) -> PathState:
        """Walk ``rel`` component by component without following anything."""
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            try:
                st = os.lstat(self.path(sub))
            except FileNotFoundError:
                return PathState(None, tuple("/".join(parts[:j]) for j in range(i, len(parts) + 1)), False, 0)
            except OSError as exc:
                raise HostError(sub, reason(exc), exc.errno) from None
            if _stat.S_ISLNK(st.st_mode):
                return PathState(sub, (), False, 0)
            if not _stat.S_ISDIR(st.st_mode):
                return PathState(None, (), False, 0, blocker=sub)
        try:
            entries = len(os.listdir(self.path(rel)))
        except (FileNotFoundError, NotADirectoryError):  # removed since the walk: gone, as far as we know
            return PathState(None, (rel,), False, 0)
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        return PathState(None, (), True, entries)

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.real(rel, follow_last=False))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self.real(rel))

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries of a directory; [] when it is absent."""
        try:
            return sorted(os.listdir(self.real(rel)))
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            return []
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None

    def stat(self, rel: str) -> FileStat | None:
        try:
            st = os.stat(self.real(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        return FileStat(st.st_mode, st.st_uid, st.st_gid)

    def getxattr(self, rel: str, name: str) -> bytes | None:
        """An extended attribute (e.g. the POSIX ACL of /dev/kvm), None if unset."""
        try:
            return os.getxattr(self.real(rel), name)
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
            raise HostError(rel, reason(exc), exc.errno) from None

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
                    entry = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError:  # EPIPE: a record was overwritten while reading; go on
                    continue
                if not entry:
                    break
                lines.append(entry.decode("utf-8", "replace").partition(";")[2].rstrip("\n"))
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
