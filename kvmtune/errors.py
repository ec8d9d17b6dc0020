"""The small error hierarchy every layer raises, and guarded(), which makes exit codes of it.

OSError is translated at the Host boundary (like psutil's wrap_exceptions), so
callers can tell "the host does not have it" from "the host refused".
"""

from __future__ import annotations

import errno as _errno
import os
import sys

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_REFUSED = 4  # not permitted: by the system (not root, permission denied) or by kvmtune's safety rules
EXIT_BUSY = 5  # another kvmtune run holds the lock, or an interrupted run must be settled first
# One line each, for the man page (the README's table says more).
EXIT_MEANINGS = {
    EXIT_OK: "Success; for check, the host is ready.",
    EXIT_NOT_READY: "check: not ready, or not judged (--only/--skip left out kvm.device); verify: drift; "
                    "apply: failed (and undone); report: a host not ready.",
    EXIT_USAGE: "Bad usage or bad input (an option, a profile, a path); nothing was changed.",
    EXIT_INTERNAL: "Internal error: a message, no traceback (KVMTUNE_DEBUG=1 shows it).",
    EXIT_REFUSED: "Not permitted: root needed, permission denied, or something kvmtune will not do "
                  "(write through a link); nothing was changed.",
    EXIT_BUSY: "Busy: another apply or rollback holds the lock (--wait queues), or an interrupted run "
               "must be settled first (rollback, or apply --resume).",
}

_REFUSALS = (_errno.EACCES, _errno.EPERM, _errno.ELOOP, _errno.EROFS)


class KvmtuneError(Exception):
    """Base of every error kvmtune raises on purpose."""

    exit_code = EXIT_INTERNAL


class UsageError(KvmtuneError):
    """Bad command-line usage or bad input file: nothing was changed."""

    exit_code = EXIT_USAGE


class Refused(KvmtuneError):
    """Not permitted: run as root, fix a permission, or remove what kvmtune will not write through."""

    exit_code = EXIT_REFUSED


class Busy(KvmtuneError):
    """Another run holds the lock, or an interrupted run's journal must be settled first."""

    exit_code = EXIT_BUSY


class HostError(KvmtuneError):
    """A read or write of the host failed; carries the relative path and the reason."""

    def __init__(self, rel: str, reason: str, errno: int | None = None):
        super().__init__(f"/{rel}: {reason}")
        self.rel = rel
        self.reason = reason
        self.errno = errno

    @property
    def exit_code(self) -> int:
        return EXIT_REFUSED if self.errno in _REFUSALS else EXIT_INTERNAL


class NotLive(HostError):
    """The operation needs the live kernel, but the host is a snapshot (--root)."""

    def __init__(self, what: str):
        super().__init__(what, "not available in a snapshot")


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on escaped (ESC, CSI, BEL, bidi
    overrides...), line ends kept: messages quote input, and input is never echoed raw."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def quoted(text: str, limit: int = 80) -> str:
    """A value from input, quoted for a message: escaped (line ends too) and cut at ``limit``."""
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def fail(message: str, code: int, as_json: bool = False, prefix: str = "error: ") -> int:
    """Say what went wrong, in kvmtune's one style (input escaped), and return the exit code.
    With --json, stdout still gets exactly one object (Ansible parses it whatever the exit
    code), in the shape of apply's result: failed, changed, msg and rc."""
    message = printable(message)
    sys.stderr.write(f"kvmtune: {prefix}{message}\n")
    if as_json:
        from kvmtune.fastjson import dumps

        sys.stdout.write(dumps({"failed": True, "changed": False, "msg": message, "rc": code}) + "\n")
    return code


def guarded(fn, *args, as_json: bool = False) -> int:
    """Run a command body: domain errors become a message and their exit code."""
    try:
        return fn(*args)
    except KvmtuneError as exc:
        return fail(str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        return fail("interrupted", 130, as_json, prefix="")
    except BrokenPipeError:
        return 0
    except Exception as exc:  # an internal error: say so plainly, trace only on request
        if os.environ.get("KVMTUNE_DEBUG") == "1":
            raise
        fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL, as_json, prefix="")
        sys.stderr.write("(set KVMTUNE_DEBUG=1 to see the traceback)\n")
        return EXIT_INTERNAL
