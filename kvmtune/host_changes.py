"""The changing half of the host layer: knob writes, atomic files, directories, mounts, a lock.

Mixed into Host (kvmtune.host), which owns the root, the paths and the reads; kept
apart so each module stays small. Everything here goes through Host.path(), so a
snapshot tree is changed exactly where the live host would be.
"""

from __future__ import annotations

import os

from kvmtune.errors import HostError


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class HostChanges:
    """The writes of a Host (uses its ``path``, ``live`` and ``read_optional``)."""

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
