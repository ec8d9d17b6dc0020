"""An operator's input files outside any host root (collected check results), read within
the same bounds as the host's own files."""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from kvmtune.errors import UsageError
from kvmtune.host.reads import MAX_READ, NOT_REGULAR, too_big


def read_input(path: str, limit: int = MAX_READ) -> bytes:
    """An operator's input file, outside any host root (a collected check result): bounded
    as the host's files are. Regular files only, opened non-blocking (a FIFO never blocks),
    its size judged before reading. OSError (EINVAL, EFBIG) otherwise."""
    return read_input_stamped(path, limit)[0]


def read_input_stamped(path: str, limit: int = MAX_READ) -> tuple[bytes, int]:
    """read_input, and the file's modification time (ns) from the same open file: a fleet's
    newest result per host is chosen by it, without a second look at the path."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise OSError(_errno.EINVAL, NOT_REGULAR)
        if st.st_size > limit:
            raise OSError(_errno.EFBIG, too_big(limit))
        chunks, size = [], 0
        # Ask for the size fstat gave (and a page more, to see the end): os.read allocates
        # what it is asked for, and 10,000 results asked for 64 MiB each cost twice the read.
        while size <= limit and (chunk := os.read(fd, min(limit + 1 - size, max(st.st_size - size, 0) + 4096))):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew since fstat
            raise OSError(_errno.EFBIG, too_big(limit))
        return b"".join(chunks), st.st_mtime_ns
    finally:
        os.close(fd)


def collect_inputs(paths: list[str]) -> list[str]:
    """The files named, and every file under the directories named (sorted, hidden ones left
    out), in the order given: the collected results of a fleet."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            for dirpath, dirnames, names in os.walk(path):
                dirnames.sort()
                files += [os.path.join(dirpath, n) for n in sorted(names) if not n.startswith(".")]
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return files
