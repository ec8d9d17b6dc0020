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

from kvmtune.errors import HostError
from kvmtune.host.live import HostLive
from kvmtune.host.procs import HostProcs
from kvmtune.host.reads import HostReads
from kvmtune.host.records import FileStat, FileState, PathState

__all__ = ["Host", "FileStat", "FileState", "PathState"]
MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup


class Host(HostReads, HostLive, HostProcs):
    """A machine to read, rooted at ``root`` (``/`` is the live one). It cannot write: the
    tuning engine works on a kvmtune.host.writable.WritableHost, and check never imports it."""

    def __init__(self, root: str = "/", live: bool | None = None):
        self.root = os.path.abspath(root)
        self.live = (self.root == "/") if live is None else live
        self._resolved: dict[str, str] = {}  # a component path, spelled resolved -> resolved
        self._dirs: dict[str, str] = {}  # a directory as spelled -> resolved
        self._scans: dict[str, dict | None] = {}  # a snapshot directory -> its entries' kinds

    def __repr__(self) -> str:
        return f"Host({self.root!r}, live={self.live})"

    # -- paths -------------------------------------------------------------

    def path(self, rel: str) -> str:
        """The path of ``rel`` as spelled; refuses absolute paths and ``..`` parts."""
        if rel[:1] == "/" or (".." in rel and ".." in rel.split("/")):
            raise ValueError(f"host paths are relative and stay inside the root: {rel!r}")
        return f"{self.root}/{rel}" if self.root != "/" else "/" + rel

    def resolve(self, rel: str, follow_last: bool = True) -> str:
        """``rel`` with its links resolved inside the root (see the module docstring)."""
        self.path(rel)
        if self.root == "/":
            return rel
        if follow_last and rel in self._resolved:  # a directory a listing or a walk has seen
            return self._resolved[rel]
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

    def real_parent(self, rel: str) -> str:
        """``rel`` with only its directories resolved (cached per directory): the path to
        lstat when the final component's own type decides what to do."""
        self.path(rel)
        if self.root == "/":
            return "/" + rel
        head, _, name = rel.rpartition("/")
        base = self._dirs.get(head)
        if base is None:
            base = self._dirs[head] = self.resolve(head) if head else ""
        return f"{self.root}/{base}/{name}" if base else f"{self.root}/{name}"

