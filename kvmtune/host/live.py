"""What only a live host can do: ask the kernel about access, open devices, read its log.

Mixed into Host; on a snapshot every one of these raises NotLive rather than touching
the machine kvmtune happens to run on.
"""

from __future__ import annotations

import os

from kvmtune.errors import HostError, NotLive
from kvmtune.host.records import reason


class HostLive:
    def require_live(self, what: str) -> None:
        if not self.live:
            raise NotLive(what)

    def process_cpu_seconds(self, name: str) -> float | None:
        """User plus system CPU seconds of the process named ``name`` (a kernel thread such as
        ksmd), None if there is none. psutil finds it and converts clock ticks; its import
        (~50 ms) only matters to check, which never asks."""
        self.require_live(name)
        import psutil

        for proc in psutil.process_iter(["name"]):
            if proc.info["name"] == name:
                try:
                    times = proc.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    return None
                return times.user + times.system
        return None

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
            raise HostError(rel, reason(exc), exc.errno) from None

    def mapping_address(self, name: str) -> int:
        """Where this process mapped the memfd named ``name`` (/proc/self/maps says)."""
        self.require_live("proc/self/maps")
        for line in self.read("proc/self/maps", limit=16 << 20).splitlines():
            if line.endswith((f"/memfd:{name} (deleted)", f"/memfd:{name}")):
                return int(line.split("-", 1)[0], 16)
        raise HostError("proc/self/maps", f"no mapping of memfd {name}")

    def kernel_log(self) -> list[str]:
        """The kernel's ring buffer (/dev/kmsg), message text only; [] if it may not be read."""
        self.require_live("dev/kmsg")
        try:
            fd = os.open(self.path("dev/kmsg"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return []  # dmesg_restrict without CAP_SYSLOG, or no /dev/kmsg
        lines = []
        try:
            while True:
                try:
                    entry = os.read(fd, 8192)
                except BlockingIOError:
                    break
                except OSError:  # EPIPE: a record was overwritten while reading; go on
                    continue
                if not entry:
                    break
                lines.append(entry.decode("utf-8", "replace").partition(";")[2].rstrip("\n"))
        finally:
            os.close(fd)
        return lines

    @property
    def page_size(self) -> int:
        """Base page size; a snapshot is assumed x86-64 (4 KiB), the only arch we judge."""
        return os.sysconf("SC_PAGE_SIZE") if self.live else 4096

    def nss_user(self, name: str) -> tuple[int, int, set[int]] | None:
        """A user through NSS (LDAP, sssd...) on the live host: uid, gid, all group ids."""
        self.require_live(f"user {name}")
        import pwd

        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        return pw.pw_uid, pw.pw_gid, set(os.getgrouplist(name, pw.pw_gid))

    def run_program(self, rel: str, args: list[str], timeout: float = 20.0) -> str:
        """Run the program at ``rel`` (a host path) with ``args`` and return its stdout; HostError
        with its stderr's last line when it fails. Never on check's path: a process costs more
        than every file check reads (cpu-models asks QEMU what it has, once)."""
        self.require_live(rel)
        import subprocess

        try:
            proc = subprocess.run([self.path(rel), *args], stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, errors="replace", timeout=timeout)
        except OSError as exc:
            raise HostError(rel, reason(exc), exc.errno) from None
        except subprocess.TimeoutExpired:
            raise HostError(rel, f"no answer in {timeout:g} s") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise HostError(rel, last[:200])
        return proc.stdout

    # The system journal's native socket (systemd.journal-fields(7): KEY=VALUE lines, one
    # datagram a message), else the syslog socket, where journald and every syslogd listen.
    LOG_SOCKETS = ("run/systemd/journal/socket", "dev/log")

    def send_log(self, identifier: str, messages: list[str], priority: int = 4) -> str:
        """Send each message (one line) to the system journal, tagged SYSLOG_IDENTIFIER=identifier;
        the socket used. HostError (ENOENT) when the host has neither socket."""
        self.require_live("the system journal")
        import socket

        for rel in self.LOG_SOCKETS:
            if not self.exists(rel):
                continue
            path = self.path(rel)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    for message in messages:
                        line = message.replace("\n", " ")
                        if rel == self.LOG_SOCKETS[0]:
                            data = f"SYSLOG_IDENTIFIER={identifier}\nPRIORITY={priority}\nMESSAGE={line}\n"
                        else:  # RFC 3164 as syslog(3) sends it: facility user (1)
                            data = f"<{8 + priority}>{identifier}[{os.getpid()}]: {line}"
                        sock.sendto(data.encode("utf-8", "replace"), path)
            except OSError as exc:
                raise HostError(rel, reason(exc), exc.errno) from None
            return "/" + rel
        import errno

        raise HostError(self.LOG_SOCKETS[1], "no system journal or syslog socket", errno.ENOENT)
