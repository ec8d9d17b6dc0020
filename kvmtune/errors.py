"""The small error hierarchy every layer raises; the CLI maps it to exit codes.

OSError is translated at the Host boundary (like psutil's wrap_exceptions), so
callers can tell "the host does not have it" from "the host refused".
"""

from __future__ import annotations

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class KvmtuneError(Exception):
    """Base of every error kvmtune raises on purpose."""

    exit_code = EXIT_INTERNAL


class UsageError(KvmtuneError):
    """Bad command-line usage or bad input file: nothing was changed."""

    exit_code = EXIT_USAGE


class HostError(KvmtuneError):
    """A read or write of the host failed; carries the relative path and the reason."""

    def __init__(self, rel: str, reason: str, errno: int | None = None):
        super().__init__(f"/{rel}: {reason}")
        self.rel = rel
        self.reason = reason
        self.errno = errno


class NotLive(HostError):
    """The operation needs the live kernel, but the host is a snapshot (--root)."""

    def __init__(self, what: str):
        super().__init__(what, "not available in a snapshot")
