"""Mounts and the lock: the host layer's two operations with a kernel object behind them.

Mixed into Host with HostChanges (whose guards and directory walks it uses). A live
mount is made through a descriptor of the mount point reached without following any
link (/proc/self/fd/N), so a link swapped in after the check cannot redirect it; a
snapshot records mounts in its proc/mounts, a file replaced whole like its knobs.
"""

from __future__ import annotations

import errno
import os
import stat

from kvmtune.errors import HostError
from kvmtune.host.records import reason


class HostMounts:
    """mount, umount and the lock of a Host."""

    # -- mounts ------------------------------------------------------------

    def mount(self, fstype: str, target: str, options: str) -> None:
        """mount(2) on the live host, on a directory reached without following any link; a
        snapshot records the mount in its proc/mounts instead."""
        rel = target.lstrip("/")
        self._guard("mount", rel)
        if not self.live:
            line = f"{fstype} {target} {fstype} rw,relatime{',' + options if options else ''} 0 0\n"
            self._record_snapshot_mounts((self.read_optional("proc/mounts") or "") + line)
            return
        import ctypes

        fd = self._walk_nofollow(rel)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            # Through the descriptor: a link swapped in after the walk cannot redirect it.
            if libc.mount(fstype.encode(), f"/proc/self/fd/{fd}".encode(), fstype.encode(), 0,
                          options.encode() or None) != 0:
                err = ctypes.get_errno()
                raise HostError(rel, f"mount: {os.strerror(err)}", err)
        finally:
            os.close(fd)

    def umount(self, target: str) -> None:
        rel = target.lstrip("/")
        self._guard("mount", rel)
        if not self.live:
            lines = (self.read_optional("proc/mounts") or "").splitlines(keepends=True)
            self._record_snapshot_mounts("".join(l for l in lines if l.split()[1:2] != [target]))
            return
        import ctypes

        head, _, name = rel.rpartition("/")
        fd = self._walk_nofollow(head)  # no link on the way: /mnt -> elsewhere must not pick the mount
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            # 8: UMOUNT_NOFOLLOW, for the last component; the directory is the one walked to.
            if libc.umount2(f"/proc/self/fd/{fd}/{name}".encode(), 8) != 0:
                err = ctypes.get_errno()
                raise HostError(rel, f"umount: {os.strerror(err)}", err)
        finally:
            os.close(fd)

    def _record_snapshot_mounts(self, text: str) -> None:
        from kvmtune.host.atomic import replace_at

        def replace(dir_fd, name):
            st = self._refuse_link(dir_fd, name)
            mode, who = (stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)) if st else (0o444, None)
            replace_at(dir_fd, name, text.encode(), mode, who)
        self._at("proc/mounts", replace)

    # -- locking -----------------------------------------------------------

    def lock(self, wait: bool) -> int:
        """Take kvmtune's one lock; returns the descriptor that holds it (close to release).

        The lock is a file that is never removed (live: /run/lock/kvmtune.lock) or, in a
        snapshot, the root directory itself: every waiter and newcomer locks the same inode.
        """
        from kvmtune.host import owned
        import fcntl

        try:
            if self.live and os.path.isdir(self.path("run/lock")):
                fd = self._at(owned.LOCK_FILE, lambda d, n: os.open(
                    n, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=d))
            else:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise HostError(owned.LOCK_FILE, reason(exc), exc.errno) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise HostError(owned.LOCK_FILE, "another kvmtune apply or rollback holds the lock",
                            errno.EWOULDBLOCK) from None
        return fd

    def unlock(self, fd: int) -> None:
        os.close(fd)
