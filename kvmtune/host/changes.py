"""The changing half of the host layer: knobs, files, directories, mounts and the lock.

Mixed into Host (kvmtune.host.door), which owns the root, the paths and the reads. Every
change is first checked against kvmtune.host.owned (what kvmtune may change at all), then
made through a descriptor of its directory reached component by component from the
root, never following a link on the way nor at the final component: a link anywhere on a
written path is refused, naming the path (``proc/sys/vm -> ../../etc`` must not make the key
``vm.passwd`` a write of etc/passwd). Files are replaced atomically (kvmtune.host.atomic); so are a snapshot's knob files,
since a snapshot's "kernel" is a tree of plain files that a kill must not leave empty.
"""

from __future__ import annotations

import errno
import os
import stat

from kvmtune.errors import HostError

from kvmtune.host.reads import exact_bytes
from kvmtune.host.records import LINK_REFUSED, reason


class HostChanges:
    """The writes of a Host (uses its ``root``, ``live``, ``path``, ``resolve``, reads)."""

    def _guard(self, op: str, rel: str) -> None:
        # Imported where used (here and below): check never writes, and need not compile
        # the allow-list's patterns on every run.
        from kvmtune.host import owned

        self.path(rel)
        self._scans.clear()  # what listings showed may change now
        if not owned.allows(op, rel):
            raise HostError(rel, "not a path kvmtune may change", errno.EPERM)

    def _walk_nofollow(self, rel_dir: str) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        done = []
        for part in [p for p in rel_dir.split("/") if p]:
            done.append(part)
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOTDIR:  # O_DIRECTORY answers a link so: say which it is
                    try:
                        self._refuse_link(fd, part)
                    except OSError as link:
                        exc = link
                os.close(fd)
                raise HostError("/".join(done), reason(exc), exc.errno) from None
            os.close(fd)
            fd = nxt
        return fd

    def _at(self, rel: str, fn):
        """Run fn(dir_fd, name) on the directory holding rel, every component of it a real
        directory (a link is ELOOP, refused); OSError becomes HostError."""
        head, _, name = rel.rpartition("/")
        dir_fd = self._walk_nofollow(head)
        try:
            return fn(dir_fd, name)
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        finally:
            os.close(dir_fd)

    @staticmethod
    def _refuse_link(dir_fd: int, name: str) -> os.stat_result | None:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, LINK_REFUSED)
        return st

    # -- kernel knobs --------------------------------------------------------

    def write(self, rel: str, value: str) -> None:
        """Write a kernel knob as echo does; a refusal comes back as HostError."""
        self._guard("knob", rel)
        text = value if value.endswith("\n") else value + "\n"  # exact text: any byte kept
        if self.live:
            self._echo(rel, text)
            return
        text = self._snapshot_selector(rel, text)

        def replace(dir_fd, name):
            from kvmtune.host.atomic import replace_at

            st = self._refuse_link(dir_fd, name)
            if st is None:
                raise OSError(errno.ENOENT, "No such file or directory")
            replace_at(dir_fd, name, exact_bytes(text), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))
        self._at(rel, replace)

    def _echo(self, rel: str, text: str) -> None:
        """One write to a live kernel file, as echo makes it (the path checked by the caller)."""
        def attribute(dir_fd, name):
            fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.write(fd, exact_bytes(text))
            finally:
                os.close(fd)
        self._at(rel, attribute)

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

    # -- files ---------------------------------------------------------------

    def write_file(self, rel: str, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> None:
        """Replace a file kvmtune owns, atomically; a link at its place is refused."""
        self._guard("file", rel)
        from kvmtune.host.atomic import replace_at

        def replace(dir_fd, name):
            self._refuse_link(dir_fd, name)
            replace_at(dir_fd, name, exact_bytes(text), mode, owner)
        self._at(rel, replace)

    def write_shared(self, rel: str, text: str, create: bool = False) -> None:
        """Edit a file kvmtune shares with the system (fstab), never through a link (in a
        snapshot, etc/fstab -> passwd would edit passwd); the file keeps its mode, owner and
        xattrs. ``create``: make it (0644) where there is none and no link stands in its place."""
        self._guard("shared", rel)
        from kvmtune.host.atomic import replace_at

        if create and not self.exists(rel):
            self._at(rel, lambda dir_fd, name: replace_at(dir_fd, name, exact_bytes(text), 0o644))
            return
        target = self.shared_target(rel)

        def replace(dir_fd, name):
            st = self._refuse_link(dir_fd, name)
            if st is None:
                raise OSError(errno.ENOENT, "No such file or directory")
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                xattrs = tuple((k, os.getxattr(fd, k)) for k in os.listxattr(fd))
            finally:
                os.close(fd)
            replace_at(dir_fd, name, exact_bytes(text), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid), xattrs)
        self._at(target, replace)

    def shared_target(self, rel: str) -> str:
        """A shared file to edit: it must exist, be a regular file and have no link on its
        path (HostError ELOOP, a refusal, otherwise)."""
        st = self._at(rel, self._refuse_link)
        if st is None:
            raise HostError(rel, "cannot be edited: No such file or directory", errno.ENOENT)
        if not stat.S_ISREG(st.st_mode):
            raise HostError(rel, "is not a regular file", errno.EPERM)
        return rel

    def remove(self, rel: str) -> None:
        """Remove a file kvmtune owns (a link is removed, never followed)."""
        self._guard("remove", rel)

        def unlink(dir_fd, name):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
        self._at(rel, unlink)

    def clear_temp(self, rel: str, op: str) -> bool:
        """Remove the temp file a killed atomic write of ``rel`` left; True if there was one."""
        from kvmtune.host import owned
        self._guard(op, rel)
        tmp = owned.temp_name(rel)  # beside rel itself: nothing is written through a link

        def unlink(dir_fd, name):
            try:
                os.unlink(name, dir_fd=dir_fd)
                return True
            except (FileNotFoundError, NotADirectoryError):
                return False
        try:
            return self._at(tmp, unlink)
        except HostError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise

    def clear_snapshot_mounts_temp(self) -> bool:
        """A snapshot's mount table is a file kvmtune replaces whole: remove a killed write's temp."""
        from kvmtune.host import owned
        if self.live:
            return False
        try:
            os.unlink(self.path(owned.temp_name("proc/mounts")))
            return True
        except OSError:
            return False

    # -- directories ---------------------------------------------------------

    def mkdir(self, rel: str, mode: int = 0o755) -> bool:
        """Create one directory (its parent must exist, no link on the way); False if it was there."""
        self._guard("dir", rel)

        def make(dir_fd, name):
            try:
                os.mkdir(name, mode, dir_fd=dir_fd)
            except FileExistsError:
                if self._refuse_link(dir_fd, name) is None or not stat.S_ISDIR(os.lstat(name, dir_fd=dir_fd).st_mode):
                    raise OSError(errno.ENOTDIR, "exists and is not a directory") from None
                return False
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                os.fchmod(fd, mode)  # mkdir's mode passes through the umask
            finally:
                os.close(fd)
            return True
        return self._at(rel, make)

    def rmdir(self, rel: str) -> bool:
        """Remove an empty directory; False if it is not empty or gone."""
        self._guard("dir", rel)

        def remove(dir_fd, name):
            try:
                os.rmdir(name, dir_fd=dir_fd)
                return True
            except OSError:
                return False
        try:
            return self._at(rel, remove)
        except HostError:
            return False

    def rename_dir(self, src: str, dst: str) -> None:
        """Rename a directory kvmtune made (the staged state directory into place, or back)."""
        self._guard("dir", src)
        self._guard("dir", dst)
        src_head, _, src_name = src.rpartition("/")
        dst_head, _, dst_name = dst.rpartition("/")
        src_fd = self._walk_nofollow(src_head)
        try:
            dst_fd = self._walk_nofollow(dst_head)
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                os.fsync(dst_fd)
            except OSError as exc:
                raise HostError(dst, reason(exc), exc.errno) from None
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)

    def remove_tree(self, rel: str) -> None:
        """Remove a directory kvmtune made and everything in it (files only; no link followed)."""
        self._guard("dir", rel)
        for name in self.listdir_nofollow(rel):
            sub = f"{rel}/{name}"
            st = os.lstat(self.path(sub))
            if stat.S_ISDIR(st.st_mode):
                self.remove_tree(sub)
            else:
                self.remove(sub)
        self.rmdir(rel)

    def listdir_nofollow(self, rel: str) -> list[str]:
        try:
            fd = self._walk_nofollow(rel)
        except HostError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return []
            raise
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def read_only(self, rel: str) -> bool:
        """Whether the filesystem holding rel is mounted read-only."""
        try:
            return bool(os.statvfs(self.path(rel)).f_flag & os.ST_RDONLY)
        except OSError:
            return False
