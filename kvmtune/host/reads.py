"""The reading half of the host layer: files, listings, metadata, device nodes.

Mixed into Host (kvmtune.host.door), which owns the root and resolves paths inside it.
Reads never block and never leave the root: only a regular file is opened as a file
(a FIFO, socket or device where a file belongs is refused, not opened), every read
has a size cap, and a snapshot's device nodes come from the tree or from its
manifest (kvmtune-snapshot.json), since a copied tree cannot hold real nodes unless
it was made by root.
"""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from kvmtune.errors import HostError
from kvmtune.host.records import FileStat, FileState, PathState, reason

MAX_READ = 1 << 20  # 1 MiB: a sysfs or /etc file; bigger readers (cpuinfo, mounts) say so
# Files kvmtune rewrites are carried as "exact text": bytes decoded so that each byte that
# is not UTF-8 becomes one lone surrogate (PEP 383), which encodes back to the same byte.
# Every byte survives the round trip, and JSON keeps it as a \udcXX escape.
EXACT = "surrogateescape"


def exact_text(data: bytes) -> str:
    return data.decode("utf-8", EXACT)


def exact_bytes(text: str) -> bytes:
    """The bytes of exact text; UnicodeEncodeError for a surrogate no byte decodes to."""
    return text.encode("utf-8", EXACT)
NOT_REGULAR = "not a regular file"
MANIFEST = "kvmtune-snapshot.json"


def too_big(limit: int) -> str:
    return f"larger than {limit >> 20 or limit} {'MiB' if limit >= 1 << 20 else 'bytes'}: not read"


def _entry_kind(entry) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "other"


def _kind(path: str, follow: bool = False) -> str | None:
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except FileNotFoundError:
        return None
    if _stat.S_ISLNK(mode):
        return "link"
    return "file" if _stat.S_ISREG(mode) else "dir" if _stat.S_ISDIR(mode) else "other"


def _absent_is_none(read, rel: str, limit: int):
    """read(rel, limit), or None where the file (or a directory on its path) is absent."""
    try:
        return read(rel, limit)
    except HostError as exc:
        if exc.errno in (_errno.ENOENT, _errno.ENOTDIR):
            return None
        raise


class HostReads:
    """The reads of a Host (uses its ``root``, ``live``, ``path``, ``real``, ``resolve``)."""

    def read(self, rel: str, limit: int = MAX_READ) -> str:
        """The whole text of a regular file of at most ``limit`` bytes (bytes that are not UTF-8
        shown as U+FFFD); HostError (with errno) otherwise."""
        return self.read_bytes(rel, limit).decode("utf-8", "replace")

    def read_bytes(self, rel: str, limit: int = MAX_READ) -> bytes:
        """The bytes of a regular file of at most ``limit`` bytes; HostError (with errno)
        otherwise. A FIFO, socket or device where a file belongs is never opened: it could
        block for ever or act on being opened."""
        try:
            # A snapshot is anyone's tree: look before opening (a device node there must never
            # be opened). The live /proc, /sys and /etc are root's: a non-blocking open and
            # fstat are as safe there, and cheaper for the hundred-odd reads of a check.
            if self.root == "/":
                self.path(rel)
                path = "/" + rel
            else:
                path = self._snapshot_file(rel)
            # os.read is about twice as fast as open() for the many tiny sysfs files.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if self.root == "/" and not _stat.S_ISREG(st.st_mode):
                    raise HostError(rel, NOT_REGULAR, _errno.EINVAL)
                # A file that states its size (a snapshot's, sysfs's 4096) is read in one call, and
                # a short read of it is its end; /proc's size-0 files are read until empty.
                step = min(st.st_size + 1, limit + 1) if st.st_size else 1 << 16
                chunks = []
                size = 0
                while chunk := os.read(fd, min(step, limit + 1 - size)):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        raise HostError(rel, too_big(limit), _errno.EFBIG)
                    if st.st_size and len(chunk) < step:
                        break
            finally:
                os.close(fd)
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        return b"".join(chunks)

    def _snapshot_file(self, rel: str) -> str:
        """Where a regular file of a snapshot is (links resolved inside the root); OSError if
        it is absent or something else. In a directory this Host has listed, the listing
        already says (d_type); elsewhere one lstat does."""
        head, _, name = rel.rpartition("/")
        path = self.real_parent(rel)  # validates rel, resolves (and caches) the directory
        kinds = self._scans.get(path[:-len(name) - 1])
        kind = kinds.get(name) if kinds is not None else _kind(path)
        if kind == "link":  # resolved inside the root, then looked at again
            path = self.real(rel)
            kind = _kind(path, follow=True)
        if kind is None:
            raise FileNotFoundError(_errno.ENOENT, "No such file or directory")
        if kind != "file":
            raise OSError(_errno.EINVAL, NOT_REGULAR)
        return path

    def read_optional(self, rel: str, limit: int = MAX_READ) -> str | None:
        """The text of a file, or None when the file is absent (through ``read``, which a
        recording Host overrides)."""
        return _absent_is_none(self.read, rel, limit)

    def read_exact_optional(self, rel: str, limit: int = MAX_READ) -> str | None:
        """The exact text (every byte kept) of a file kvmtune may rewrite, or None when absent."""
        data = self.read_bytes_optional(rel, limit)
        return None if data is None else exact_text(data)

    def read_bytes_optional(self, rel: str, limit: int = MAX_READ) -> bytes | None:
        """The bytes of a file, or None when the file is absent."""
        return _absent_is_none(self.read_bytes, rel, limit)

    def read_file_state(self, rel: str, limit: int = MAX_READ) -> FileState | None:
        """A file kvmtune owns, read without following a link: None if absent, HostError
        (ELOOP) if it is a link, whose target is never read; (EINVAL) if it is not a regular
        file (a FIFO is opened non-blocking and never read); (EFBIG) if it is over ``limit``,
        judged by its size before a byte is read."""
        try:
            fd = os.open(self.real(rel, follow_last=False),
                         os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (_errno.ENOENT, _errno.ENOTDIR):
                return None
            raise HostError(rel, reason(exc), exc.errno) from None
        try:
            st = os.fstat(fd)
            if not _stat.S_ISREG(st.st_mode):
                raise HostError(rel, NOT_REGULAR, _errno.EINVAL)
            if st.st_size > limit:
                raise HostError(rel, too_big(limit), _errno.EFBIG)
            chunks, size = [], 0
            while chunk := os.read(fd, min(1 << 16, limit + 1 - size)):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:  # grew since fstat
                    raise HostError(rel, too_big(limit), _errno.EFBIG)
        finally:
            os.close(fd)
        return FileState(exact_text(b"".join(chunks)), _stat.S_IMODE(st.st_mode),
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
        if not self.live and rel in self.manifest().get("nodes", {}):
            return True
        return os.path.lexists(self.real(rel, follow_last=False))

    def readlink(self, rel: str) -> str | None:
        """The text of a symbolic link itself (never followed), None if absent or not a link:
        /proc/PID/fd/N names what a descriptor is (``anon_inode:kvm-vm``)."""
        if not self.live:  # a snapshot keeps its links in the manifest (its tree and tar hold none)
            saved = self.manifest().get("links", {}).get(rel)
            if saved is not None:
                return saved
        try:
            return os.readlink(self.real(rel, follow_last=False))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == _errno.EINVAL:  # not a link
                return None
            raise HostError(rel, reason(exc), exc.errno) from None

    def kind(self, rel: str) -> str | None:
        """file, dir, link, other (a device, FIFO or socket) or None: what is at rel itself."""
        return _kind(self.real(rel, follow_last=False))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self.real(rel))

    def listdir(self, rel: str) -> list[str]:
        """Sorted entries of a directory; [] when it is absent."""
        if self.root == "/":
            try:
                return sorted(os.listdir("/" + rel))
            except (FileNotFoundError, NotADirectoryError):
                return []
            except OSError as exc:
                raise HostError(rel, reason(exc), exc.errno) from None
        resolved = self.resolve(rel)
        directory = os.path.join(self.root, resolved)
        try:
            with os.scandir(directory) as entries:
                kinds = {e.name: _entry_kind(e) for e in entries}
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        # Remember what the listing showed: reading these entries then needs no lstat, and
        # their real subdirectories need no resolving.
        self._scans[directory.rstrip("/")] = kinds
        prefix = f"{resolved}/" if resolved else ""
        for name, kind in kinds.items():
            if kind == "dir":
                self._resolved[prefix + name] = prefix + name
        return sorted(kinds)

    def stat(self, rel: str) -> FileStat | None:
        """Type, mode, owner and device numbers (links followed inside the root); in a
        snapshot, a device node its manifest records wins over the copied tree."""
        node = self.manifest().get("nodes", {}).get(rel) if not self.live else None
        if node is not None:
            return FileStat(node["mode"], node["uid"], node["gid"], os.makedev(node["major"], node["minor"]))
        try:
            st = os.stat(self.real(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        return FileStat(st.st_mode, st.st_uid, st.st_gid, st.st_rdev)

    def getxattr(self, rel: str, name: str) -> bytes | None:
        """An extended attribute (e.g. the POSIX ACL of /dev/kvm), None if unset."""
        if not self.live:
            saved = self.manifest().get("nodes", {}).get(rel, {}).get("xattrs", {}).get(name)
            if saved is not None:
                import base64

                return base64.b64decode(saved)
        try:
            return os.getxattr(self.real(rel), name)
        except OSError:
            return None

    def manifest(self) -> dict:
        """A snapshot's kvmtune-snapshot.json (what kvmtune snapshot captured), {} if none or unusable."""
        cached = getattr(self, "_manifest", None)
        if cached is None:
            cached = {}
            if not self.live:
                try:
                    text = self.read_optional(MANIFEST, limit=16 << 20)
                    from kvmtune.host.manifest import checked_manifest

                    cached = checked_manifest(text) if text else {}
                except (HostError, ValueError):
                    cached = {"problem": f"/{MANIFEST} is not a kvmtune snapshot manifest"}
            self._manifest = cached
        return cached
