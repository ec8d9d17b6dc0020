"""``kvmtune watch``: verify the applied profile once, name the drift (metrics, system journal),
optionally put drifted runtime knobs back, run the memory policy; or install the timer that does."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError

DEFAULT_METRICS_DIR = "/var/lib/node_exporter/textfile"
VERIFY_METRICS, POLICY_METRICS = "kvmtune-verify.prom", "kvmtune-ksm-policy.prom"


class WatchOptions(Options):
    def __init__(self, profile: str | None = None, root: str = "/", once: bool = False, reapply: bool = False,
                 install: bool = False, interval: str | None = None, metrics_dir: str | None = None,
                 json: bool = False, wait: bool = False):
        self.profile = profile
        self.root = root
        self.once = once
        self.reapply = reapply
        self.install = install
        self.interval = interval
        self.metrics_dir = metrics_dir
        self.json = json
        self.wait = wait


def run_watch(opts: WatchOptions) -> int:
    if opts.install:
        from kvmtune.watch.install import install

        return _emit(*install(opts), opts)
    if not opts.once:
        raise UsageError("watch: give --once (one pass; a timer runs it every few minutes: --install) or --install")
    if opts.interval is not None:
        raise UsageError("--interval goes with --install")
    return _emit(*watch_once(opts), opts)


def watch_once(opts: WatchOptions) -> tuple[dict, int]:
    """Verify; with --reapply put the drifted runtime knobs back and verify again; the memory
    policy; metrics; one log line per drifted target."""
    from kvmtune.commands.apply import ApplyOptions, last_applied, load, verify_result
    from kvmtune.watch.targets import DRIFTED, MISSING

    profile_ref = opts.profile or last_applied(opts.root)
    vopts = ApplyOptions(profile=profile_ref, root=opts.root, persist=_persisted(opts.root))
    profile = load(vopts)
    found, _ = verify_result(vopts)
    drifted = [t for t in found["targets"] if t["status"] in (DRIFTED, MISSING)]
    restored: list[dict] = []
    out = found
    if opts.reapply and drifted:
        restored = _reapply(vopts, profile, drifted, opts.wait)
        if restored:
            out, _ = verify_result(vopts)  # what the metrics and the exit code report: the host now
    policy = memory_policy(vopts.root, profile, opts.wait)
    messages = [_drift_line(t, out["profile"], restored) for t in drifted]
    if policy is not None and policy.changed:
        messages.append(policy.line())
    out["restored"], out["policy"] = restored, None if policy is None else policy.line()
    out["metrics"] = _write_metrics(opts.metrics_dir, out, policy)
    out["logged"] = _log(opts.root, messages) if messages else None
    left = [t for t in out["targets"] if t["status"] in (DRIFTED, MISSING)]
    out["msg"] = (f"{len(left)} of {len(out['targets'])} targets drifted" if left else "in place") + (
        f"; restored {len(restored)}" if restored else "")
    out["changed"] = bool(restored) or bool(policy is not None and policy.changed)
    return out, EXIT_NOT_READY if left else EXIT_OK


def _persisted(root: str) -> bool:
    """Whether the journal's apply kept its settings at boot: a --no-persist apply journals no
    boot-time file (at most its runtime file), so verify must not ask for them."""
    from kvmtune.host.door import Host
    from kvmtune.tune.journal import read_records
    from kvmtune.tune.registry import load_all

    records, _ = read_records(Host(root), tuple(load_all()))
    boot = [r for r in records if r["type"] in ("fstab", "bls", "irqbalance")
            or (r["type"] == "file" and r["file"] not in ("runtime", "watch-service", "watch-timer"))]
    return bool(boot) or not [r for r in records if r["type"] != "file"]


def _reapply(vopts, profile, drifted: list[dict], wait: bool) -> list[dict]:
    """The drifted runtime knobs, put back through the engine; what was restored, from what, by whom."""
    from kvmtune.commands.apply import _host
    from kvmtune.tune.change import DONE, FAILED
    from kvmtune.tune.engine import apply_profile
    from kvmtune.watch.targets import runtime

    owners = {t["target"]: t["owner"] for t in drifted}
    plan = apply_profile(_host(vopts), profile, persist=vopts.persist, wait=wait,
                         only=lambda c: runtime(c) and c.target in owners)
    out = []
    for c in plan.changes:
        if c.status in DONE or c.status == FAILED:
            out.append({"target": c.target, "from": c.shown(c.before), "to": c.shown(c.after),
                        "status": c.status, "detail": c.detail, "owner": owners.get(c.target)})
    return out


def memory_policy(root: str, profile, wait: bool):
    """The KSM pressure policy (kvmtune.tune.ksm_policy, issue #22 section 3), where the profile
    has one: its Outcome (``changed``, ``decision``, ``line()``); None otherwise."""
    if getattr(profile, "ksm_policy", None) is None:
        return None
    from kvmtune.commands.apply import ApplyOptions, _host
    from kvmtune.tune.ksm_policy import apply

    return apply(_host(ApplyOptions(root=root)), profile, wait=wait)


def _drift_line(t: dict, profile: str, restored: list[dict]) -> str:
    from kvmtune.render.watch_text import _one

    back = next((r for r in restored if r["target"] == t["target"]), None)
    line = f"{t['target']} {t['status']} from profile {profile}: wants {_one(t['want'])}, has {_one(t['have'])}"
    if t["owner"]:
        line += f"; changed by {t['owner']}"
    if back is not None:
        line += "; restored" if back["status"] != "failed" else f"; not restored: {back['detail']}"
    return line


def _write_metrics(directory: str | None, out: dict, policy) -> list[str]:
    import os
    import sys
    import time

    from kvmtune.commands.check import write_output
    from kvmtune.render.verify_prometheus import render_policy_prometheus, render_verify_prometheus

    directory = directory or DEFAULT_METRICS_DIR
    if not os.path.isdir(directory):
        sys.stderr.write(f"watch: {directory} does not exist: no metrics written (--metrics-dir DIR)\n")
        return []
    written = [os.path.join(directory, VERIFY_METRICS)]
    write_output(written[0], render_verify_prometheus(out, time.time()))
    if policy is not None and policy.decision is not None:
        written.append(os.path.join(directory, POLICY_METRICS))
        write_output(written[1], render_policy_prometheus(policy))
    return written


def _log(root: str, messages: list[str], host=None) -> str | None:
    """Send the lines to the system journal; where there is none, say so once and carry on."""
    import sys

    from kvmtune.errors import HostError
    from kvmtune.host.door import Host

    host = host or Host(root)
    if not host.live:
        sys.stderr.write("watch: --root is a snapshot, with no system journal: drift not logged\n")
        return None
    try:
        return host.send_log("kvmtune", messages)
    except HostError as exc:
        where = " or ".join("/" + rel for rel in host.LOG_SOCKETS)
        sys.stderr.write(f"watch: drift not logged: {exc.reason} here ({where})\n")
        return None


def _emit(out: dict, code: int, opts: WatchOptions) -> int:
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(out)
        return code
    from kvmtune.render.watch_text import render_watch

    render_watch(out)
    return code
