"""An operator's input files outside any host root (collected check results), read within
the same bounds as the host's own files."""

from __future__ import annotations

import errno as _errno
import os
import stat as _stat

from kvmtune.host.reads import MAX_READ, NOT_REGULAR, too_big


def read_input(path: str, limit: int = MAX_READ) -> bytes:
    """An operator's input file, outside any host root (a collected check result): bounded
    as the host's files are. Regular files only, opened non-blocking (a FIFO never blocks),
    its size judged before reading. OSError (EINVAL, EFBIG) otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            raise OSError(_errno.EINVAL, NOT_REGULAR)
        if st.st_size > limit:
            raise OSError(_errno.EFBIG, too_big(limit))
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew since fstat
            raise OSError(_errno.EFBIG, too_big(limit))
        return b"".join(chunks)
    finally:
        os.close(fd)
