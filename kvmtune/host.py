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


class Host:
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

    def display(self, rel: str) -> str:
        """The path as an operator would type it on that host."""
        return "/" + rel

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

    @property
    def page_size(self) -> int:
        """Base page size; a snapshot is assumed x86-64 (4 KiB), the only arch we judge."""
        return os.sysconf("SC_PAGE_SIZE") if self.live else 4096

    @property
    def euid(self) -> int:
        return os.geteuid() if self.live else 0

    def nss_user(self, name: str) -> tuple[int, int, set[int]] | None:
        """A user through NSS (LDAP, sssd...) on the live host: uid, gid, all group ids."""
        self.require_live(f"user {name}")
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid, set(os.getgrouplist(name, pw.pw_gid))

    # -- writing -----------------------------------------------------------

    def write(self, rel: str, value: str) -> None:
        """Write a kernel knob (sysfs/procfs) as echo does; a refusal comes back as HostError."""
        text = value if value.endswith("\n") else value + "\n"
        # A snapshot's knobs are plain files that must be replaced; the kernel's are not.
        flags = os.O_WRONLY | (0 if self.live else os.O_TRUNC)
        if not self.live:
            text = self._snapshot_selector(rel, text)
        try:
            fd = os.open(self.path(rel), flags | os.O_CLOEXEC)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def _snapshot_selector(self, rel: str, text: str) -> str:
        """In a snapshot, a selector file (``always [madvise] never``) keeps its form, as
        the kernel's does, so that writes and rollbacks of a tree are byte-exact."""
        current = self.read_optional(rel)
        if not current or "[" not in current:
            return text
        words = [w.strip("[]") for w in current.split()]
        chosen = text.strip()
        if chosen not in words:
            return text
        return " ".join(f"[{w}]" if w == chosen else w for w in words) + "\n"

    def write_file(self, rel: str, text: str, mode: int = 0o644) -> None:
        """Replace a configuration file atomically (see kvmtune.files)."""
        from kvmtune.files import atomic_write

        try:
            atomic_write(self.path(rel), text, mode)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def remove(self, rel: str) -> None:
        try:
            os.unlink(self.path(rel))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def makedirs(self, rel: str, mode: int = 0o755) -> list[str]:
        """Create a directory and its parents; return the ones created, outermost first."""
        created = []
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not os.path.isdir(self.path(sub)):
                try:
                    os.mkdir(self.path(sub), mode if i == len(parts) else 0o755)
                    os.chmod(self.path(sub), mode if i == len(parts) else 0o755)
                except OSError as exc:
                    raise HostError(sub, _reason(exc), exc.errno) from None
                created.append(sub)
        return created

    def rmdir(self, rel: str) -> bool:
        """Remove an empty directory; False if it is not empty or gone."""
        try:
            os.rmdir(self.path(rel))
            return True
        except OSError:
            return False

    def chown(self, rel: str, uid: int, gid: int) -> None:
        try:
            os.chown(self.path(rel), uid, gid)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None

    def read_only(self, rel: str) -> bool:
        """Whether the filesystem holding rel is mounted read-only."""
        try:
            return bool(os.statvfs(self.path(rel)).f_flag & os.ST_RDONLY)
        except OSError:
            return False

    # -- mounts ------------------------------------------------------------

    def mount(self, fstype: str, target: str, options: str) -> None:
        """mount(2) on the live host; a snapshot records the mount in its proc/mounts."""
        rel = target.lstrip("/")
        if not self.live:
            line = f"{fstype} {target} {fstype} rw,relatime,{options}\n" if options else \
                f"{fstype} {target} {fstype} rw,relatime\n"
            self.write_file("proc/mounts", (self.read_optional("proc/mounts") or "") + line)
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(fstype.encode(), self.path(rel).encode(), fstype.encode(), 0,
                      options.encode() or None) != 0:
            err = ctypes.get_errno()
            raise HostError(rel, f"mount: {os.strerror(err)}", err)

    def umount(self, target: str) -> None:
        rel = target.lstrip("/")
        if not self.live:
            lines = (self.read_optional("proc/mounts") or "").splitlines(keepends=True)
            kept = [l for l in lines if len(l.split()) < 2 or l.split()[1] != target]
            self.write_file("proc/mounts", "".join(kept))
            return
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(self.path(rel).encode(), 0) != 0:
            err = ctypes.get_errno()
            raise HostError(rel, f"umount: {os.strerror(err)}", err)

    # -- locking -----------------------------------------------------------

    def lock(self, rel: str, wait: bool) -> int:
        """flock a directory; returns the descriptor that holds the lock (close to release)."""
        import fcntl

        try:
            fd = os.open(self.path(rel), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise HostError(rel, _reason(exc), exc.errno) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise HostError(rel, "another kvmtune apply or rollback holds the lock", 11) from None
        return fd

    def unlock(self, fd: int) -> None:
        os.close(fd)
