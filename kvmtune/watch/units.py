"""watch --install: a systemd timer and service that run ``kvmtune watch --once`` (kvmtune's own
files, journaled, so rollback removes them), and the cron line for hosts without systemd.

The same texts ship under contrib/systemd/ for packagers (a test keeps them equal to what
``unit_texts`` makes for /usr/bin/kvmtune). Enabling is systemd's to do (``systemctl enable
--now``) and only where systemd runs: /run/systemd/system exists exactly then (sd_booted(3)).
"""

from __future__ import annotations

import re

from kvmtune.errors import UsageError

SERVICE, TIMER = "watch-service", "watch-timer"
TIMER_UNIT = "kvmtune-watch.timer"
INTERVAL = re.compile(r"([1-9][0-9]{0,4})(min|h)")
PACKAGED = "/usr/bin/kvmtune"


def parse_interval(text: str) -> tuple[int, str]:
    """``5min`` -> (5, "min"); UsageError for anything systemd and cron would not both read alike."""
    m = INTERVAL.fullmatch(text or "")
    if m is None:
        raise UsageError(f"--interval: expected minutes or hours such as 5min or 1h, got {text!r}")
    return int(m.group(1)), m.group(2)


def watch_args(reapply: bool, profile: str | None, metrics_dir: str | None) -> list[str]:
    args = ["watch", "--once"] + (["--reapply"] if reapply else [])
    if metrics_dir:
        args += ["--metrics-dir", metrics_dir]
    return args + ([profile] if profile else [])


def _quote(word: str) -> str:
    """A word of ExecStart= or a cron line: plain, or double-quoted (systemd and sh read it alike)."""
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    if re.search(r'["\\$`%\n]', word):
        raise UsageError(f"{word!r}: a path with quotes, '$', '%', '\\' or a newline cannot go into a unit file")
    return f'"{word}"'


def unit_texts(command: list[str], interval: str, reapply: bool, profile: str | None,
               metrics_dir: str | None) -> dict[str, str]:
    """file id -> unit text (kvmtune's header and seal are added when written)."""
    parse_interval(interval)
    line = " ".join(_quote(w) for w in command + watch_args(reapply, profile, metrics_dir))
    what = "report and restore drift" if reapply else "report drift"
    # No Documentation=man:kvmtune(1): systemd-analyze verify fails a unit whose man page is not installed.
    service = ("[Unit]\n"
               f"Description=kvmtune watch: {what} from the applied profile\n"
               "After=systemd-sysctl.service systemd-tmpfiles-setup.service\n"
               "\n[Service]\n"
               "Type=oneshot\n"
               f"ExecStart={line}\n")
    timer = ("[Unit]\n"
             f"Description=Run kvmtune watch every {interval}\n"
             "\n[Timer]\n"
             f"OnBootSec={interval}\n"
             f"OnUnitActiveSec={interval}\n"
             "\n[Install]\n"
             "WantedBy=timers.target\n")
    return {SERVICE: service, TIMER: timer}


def cron_line(command: list[str], interval: str, reapply: bool, profile: str | None, metrics_dir: str | None) -> str:
    """The /etc/cron.d line that runs the same watch, for a host without systemd."""
    n, unit = parse_interval(interval)
    when = (f"*/{n} * * * *" if n < 60 else f"0 */{n // 60} * * *") if unit == "min" else f"0 */{n} * * *"
    return f"{when} root " + " ".join(_quote(w) for w in command + watch_args(reapply, profile, metrics_dir))


def install_plan(host, texts: dict[str, str]):
    """The changes that write the units (kvmtune's own files: sealed, journaled)."""
    from kvmtune.tune.change import Plan
    from kvmtune.tune.files import HEADER, FileChange, wanted

    facts = FileChange.read_rollback(host, [(fid, {"file": fid}) for fid in texts])
    changes = [FileChange(fid, facts["files"][fid], wanted(HEADER + text), missing=facts["file_dirs"][fid],
                          detail="kvmtune watch's systemd unit") for fid, text in texts.items()]
    return Plan(None, changes, [])


def systemd_runs(host) -> bool:
    """sd_booted(3): systemd is the init system exactly when /run/systemd/system is a directory."""
    return host.live and host.is_dir("run/systemd/system")


def enable(host) -> str:
    """``systemctl daemon-reload`` and ``enable --now`` of the timer: what it did, in words."""
    systemctl = next((p for p in ("usr/bin/systemctl", "bin/systemctl") if host.exists(p)), None)
    if systemctl is None:
        return "systemd runs but systemctl is not installed: enable the timer yourself"
    host.run_program(systemctl, ["daemon-reload"])
    host.run_program(systemctl, ["enable", "--now", TIMER_UNIT])
    return f"enabled and started {TIMER_UNIT} (systemctl enable --now)"
