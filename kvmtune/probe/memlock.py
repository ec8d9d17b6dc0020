"""RLIMIT_MEMLOCK: what the VMM's user will get, and what each running guest has.

A VFIO guest pins all its RAM for DMA (VFIO_MAP_DMA fails with ENOMEM past the limit:
kubevirt #8472). Where the limit comes from:
- a login session: pam_limits, from /etc/security/limits.conf and then limits.d/*.conf in
  C-locale order (limits.conf(5)); a user's own line beats an @group line, which beats
  ``*``; among equals the later line wins (pam_limits' process_limit); ``*`` and @group
  lines do not apply to root;
- a service (libvirtd, a systemd unit): systemd's DefaultLimitMEMLOCK= in
  /etc/systemd/system.conf and system.conf.d/*.conf (the later file wins);
- else the kernel's default, 8 MiB since Linux 5.16 (64 KiB before).
Parsers take text; read_memlock does the reads.
"""

from __future__ import annotations

from kvmtune.grammar import digits
from kvmtune.record import record

UNLIMITED = -1
KIB = 1024
KERNEL_DEFAULT_KB, OLD_KERNEL_DEFAULT_KB = 8 * KIB, 64  # Linux >= 5.16 (commit 9dcc38e2813e), before
SYSTEMD_UNITS = {"": 1, "K": KIB, "M": KIB ** 2, "G": KIB ** 3, "T": KIB ** 4}  # base 1024, bytes unless told
MAX_CONF_FILES = 256


@record
class Limit:
    soft_kb: int | None  # UNLIMITED, KiB, or None when nothing set it
    hard_kb: int | None
    source: str  # "etc/security/limits.d/vfio.conf:3", "systemd DefaultLimitMEMLOCK", "kernel default"

    def to_json(self) -> dict:
        return {"soft_kb": self.soft_kb, "hard_kb": self.hard_kb, "source": self.source}


@record
class GuestLimit:
    pid: int
    soft_kb: int | None
    hard_kb: int | None

    def to_json(self) -> dict:
        return {"pid": self.pid, "soft_kb": self.soft_kb, "hard_kb": self.hard_kb}


@record
class MemlockFacts:
    user: str | None  # whose login limit was resolved (None: no VMM user known)
    session: Limit | None  # what pam_limits gives that user
    service: Limit  # what systemd services get
    problems: tuple = ()

    def to_json(self) -> dict:
        return {"user": self.user, "session": self.session.to_json() if self.session else None,
                "service": self.service.to_json(), "problems": list(self.problems)}


def _pam_value(word: str) -> int | None:
    if word in ("unlimited", "infinity", "-1"):
        return UNLIMITED
    return int(word) if digits(word) else None


def parse_limits(text: str, where: str) -> list[tuple[str, str, int, str]]:
    """memlock lines of a limits.conf: (domain, type soft/hard/-, KiB or UNLIMITED, file:line)."""
    rules = []
    for number, line in enumerate(text.split("\n"), 1):
        words = line.split("#", 1)[0].split()
        if len(words) != 4 or words[2] != "memlock" or words[1] not in ("soft", "hard", "-"):
            continue
        value = _pam_value(words[3])
        if value is not None:
            rules.append((words[0], words[1], value, f"{where}:{number}"))
    return rules


def session_limit(rules, user: str, groups: frozenset[str]) -> Limit | None:
    """What pam_limits sets for ``user``: a user's line over @group over ``*``, later over earlier."""
    rank = {}
    soft = hard = None
    sources = {}
    for domain, kind, value, where in rules:
        if domain == user:
            level = 0
        elif domain.startswith("@") and domain[1:] in groups and user != "root":
            level = 1
        elif domain == "*" and user != "root":
            level = 2
        else:
            continue
        for which in (("soft", "hard") if kind == "-" else (kind,)):
            if level <= rank.get(which, 3):
                rank[which] = level
                sources[which] = where
                if which == "soft":
                    soft = value
                else:
                    hard = value
    if not sources:
        return None
    return Limit(soft, hard, ", ".join(dict.fromkeys(sources[w] for w in ("soft", "hard") if w in sources)))


def _systemd_value(word: str) -> int | None:
    if word == "infinity":
        return UNLIMITED
    unit = word[-1:].upper() if word[-1:].isalpha() else ""
    number = word[:-1] if unit else word
    if unit not in SYSTEMD_UNITS or not digits(number):
        return None
    return int(number) * SYSTEMD_UNITS[unit] // KIB


def parse_systemd_default(text: str) -> tuple[int, int] | None:
    """DefaultLimitMEMLOCK= of a [Manager] section: (soft, hard) KiB, the last one set."""
    found, section = None, None
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Manager]" and line.startswith("DefaultLimitMEMLOCK="):
            value = line.partition("=")[2].strip()
            soft, _, hard = value.partition(":")
            pair = (_systemd_value(soft), _systemd_value(hard or soft))
            found = pair if None not in pair else found
    return found


def parse_proc_limits(text: str) -> tuple[int | None, int | None]:
    """/proc/PID/limits' "Max locked memory" row, in KiB."""
    for line in text.split("\n"):
        if line.startswith("Max locked memory"):
            words = line[len("Max locked memory"):].split()
            if len(words) >= 2:
                def kb(word):
                    return UNLIMITED if word == "unlimited" else (int(word) // KIB if digits(word) else None)
                return kb(words[0]), kb(words[1])
    return None, None


def kernel_default_kb(release: str | None) -> int:
    parts = (release or "").split(".")
    if len(parts) >= 2 and digits(parts[0]) and digits(parts[1].split("-")[0]):
        if (int(parts[0]), int(parts[1].split("-")[0])) < (5, 16):
            return OLD_KERNEL_DEFAULT_KB
    return KERNEL_DEFAULT_KB


def _conf_files(host, directory: str) -> list[str]:
    return [f"{directory}/{n}" for n in sorted(host.listdir(directory))[:MAX_CONF_FILES] if n.endswith(".conf")]


def read_guest_limits(host, guest_pids) -> tuple:
    """Each running guest's limit as the kernel holds it (GuestLimit); a guest gone or hidden is left out."""
    guests = []
    for pid in guest_pids:
        soft, hard = parse_proc_limits(host.read_optional(f"proc/{pid}/limits") or "")
        if soft is not None:
            guests.append(GuestLimit(pid, soft, hard))
    return tuple(guests)


READ = object()  # read_memlock's ``release`` when the caller has not read the kernel release


def read_memlock(host, user: str | None, group_names: frozenset[str], systemd_conf=None,
                 release=READ) -> MemlockFacts:
    """``release``: the kernel release where check already read it (one read per file)."""
    from kvmtune.errors import HostError

    problems = []

    def text(rel):
        try:
            return host.read_optional(rel)
        except HostError as exc:
            problems.append(f"/{exc.rel}: {exc.reason}")
            return None

    service = None
    from kvmtune.probe.system import read_systemd_conf

    for rel, conf in (systemd_conf if systemd_conf is not None else read_systemd_conf(host)):
        found = parse_systemd_default(conf or "")
        if found:
            service = Limit(found[0], found[1], f"/{rel} DefaultLimitMEMLOCK")
    if service is None:
        default = kernel_default_kb(text("proc/sys/kernel/osrelease") if release is READ else release)
        service = Limit(default, default, "the kernel's default")
    session = None
    if user is not None:
        rules = []
        for rel in ("etc/security/limits.conf", *_conf_files(host, "etc/security/limits.d")):
            rules += parse_limits(text(rel) or "", f"/{rel}")
        session = session_limit(rules, user, group_names)
    return MemlockFacts(user, session, service, tuple(problems))
