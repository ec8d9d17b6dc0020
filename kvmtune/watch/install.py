"""watch --install: write the timer and service through the engine (journaled, under the lock:
rollback removes them), then enable them where systemd runs, else say so and give the cron line."""

from __future__ import annotations

from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError


def install(opts) -> tuple[dict, int]:
    import os
    import sys

    from kvmtune.commands.apply import ApplyOptions, _host, load, result
    from kvmtune.tune.change import FAILED
    from kvmtune.tune.engine import carry_out
    from kvmtune.watch.units import cron_line, enable, install_plan, systemd_runs, unit_texts

    if opts.once:
        raise UsageError("--install writes a timer that runs 'watch --once': give one of them")
    profile = opts.profile
    if profile is not None:
        load(ApplyOptions(profile=profile))  # bad input first: exit 2, nothing written
        if os.sep in profile or profile.endswith((".yaml", ".yml")):
            profile = os.path.abspath(profile)  # the timer runs elsewhere than here
    metrics_dir = os.path.abspath(opts.metrics_dir) if opts.metrics_dir else None
    interval = opts.interval or "5min"
    command = [sys.executable, "-m", "kvmtune"]  # this kvmtune, whatever the PATH of the timer
    texts = unit_texts(command, interval, opts.reapply, profile, metrics_dir)
    host = _host(ApplyOptions(root=opts.root))
    plan = carry_out(host, lambda: install_plan(host, texts), None, wait=opts.wait)
    failed = [c for c in plan.changes if c.status == FAILED]
    notes = []
    cron = None
    if failed:
        msg = f"failed: {failed[0].target}: {failed[0].detail}"
    elif systemd_runs(host):
        msg = enable(host)
    else:
        init = "a snapshot" if not host.live else f"PID 1 is {(host.read_optional('proc/1/comm') or '?').strip()}"
        cron = cron_line(command, interval, opts.reapply, profile, metrics_dir)
        msg = f"systemd is not running here ({init}): the units are written but not enabled"
        notes.append(f"without systemd, run it from cron: put this line in /etc/cron.d/kvmtune:\n{cron}")
    out = result(plan, mode="apply", failed=bool(failed), msg=msg)
    out["units"] = ["/" + c.path for c in plan.changes]
    out["cron"], out["notes"] = cron, notes
    return out, EXIT_NOT_READY if failed else EXIT_OK
