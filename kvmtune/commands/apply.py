"""``kvmtune apply | plan | verify | rollback | profiles``: profile in, result out."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK, UsageError
from kvmtune.tune.change import BLOCKED, FAILED, OK, PENDING, UNDONE, done_by_run


class ApplyOptions(Options):
    """What apply/plan/verify/rollback were asked to do."""

    def __init__(self, profile: str | None = None, root: str = "/", check: bool = False,
                 diff: bool = False, json: bool = False, persist: bool = True, force: bool = False,
                 keep_partial: bool = False, wait: bool = False, profile_text: str | None = None,
                 resume: bool = False, format: str = "text", output: str | None = None):
        self.profile = profile
        self.root = root
        self.check = check
        self.diff = diff
        self.json = json
        self.persist = persist
        self.force = force
        self.keep_partial = keep_partial
        self.wait = wait
        self.profile_text = profile_text
        self.resume = resume
        self.format = format  # verify: text, json or prometheus (--json is json)
        self.output = output


def _host(opts: ApplyOptions):
    import os

    from kvmtune.host.writable import WritableHost as Host

    if not os.path.isdir(opts.root):
        raise UsageError(f"--root: {opts.root} is not a directory")
    return Host(opts.root)


def load(opts: ApplyOptions):
    from kvmtune.profile import load_profile, load_profile_text

    if opts.profile_text is not None:
        return load_profile_text(opts.profile_text)
    if not opts.profile:
        raise UsageError("name a profile (see 'kvmtune profiles') or give a path to one")
    return load_profile(opts.profile)


def make_plan(opts: ApplyOptions, profile=None, judge_last: bool = False):
    """Validate the profile against this host and plan; ProfileError (exit 2) on bad input."""
    from kvmtune.tune.engine import plan_profile

    profile = profile or load(opts)  # before the host: bad input never reads it
    host = _host(opts)
    return host, plan_profile(host, profile, persist=opts.persist, force=opts.force, judge_last=judge_last)


def result(plan, *, mode: str, failed: bool = False, msg: str = "") -> dict:
    """The JSON contract shared by apply, plan, verify, rollback and the Ansible module."""
    from kvmtune.render.diff import plan_diff

    if mode == "check":
        changed = bool(plan.pending)
    else:
        changed = any(done_by_run(c) for c in plan.changes)
    return {
        "changed": changed,
        "failed": failed,
        "msg": msg,
        "changes": [c.to_json() for c in plan.changes],
        "warnings": list(plan.warnings),
        "reboot_required": plan.reboot_required,
        "restart_required": plan.restart_required,
        "diff": plan_diff(plan),
    }


def apply_result(opts: ApplyOptions) -> tuple[dict, int]:
    """Apply (or with opts.check, plan): the result object and the exit code."""
    if opts.check:
        _, plan = make_plan(opts)
        return result(plan, mode="check", msg=_summary(plan, "would change")), EXIT_OK
    from kvmtune.render.progress import terminal_progress
    from kvmtune.tune.engine import Context, apply_profile

    profile = load(opts)
    ctx = Context(compact=profile.compact, progress=terminal_progress())
    plan = apply_profile(_host(opts), profile, persist=opts.persist, force=opts.force,
                         keep_partial=opts.keep_partial, wait=opts.wait, resume=opts.resume, ctx=ctx)
    failed = [c for c in plan.changes if c.status == FAILED]
    if failed:
        undone = any(c.status == UNDONE for c in plan.changes)
        msg = f"failed: {failed[0].target}: {failed[0].detail}"
        if plan.kept:
            msg += (f"; {len(plan.kept)} of this run's changes could not be put back and stay in the journal: "
                    "run 'kvmtune rollback'")
        elif undone:
            msg += "; this run's changes were undone"
        elif opts.keep_partial:
            msg += "; earlier changes were kept (--keep-partial)"
        return result(plan, mode="apply", failed=True, msg=msg), EXIT_NOT_READY
    return result(plan, mode="apply", msg=_summary(plan, "changed")), EXIT_OK


def last_applied(root: str) -> str:
    """The profile applied last here, by the journal: verify's and watch's default. UsageError
    when there is none, or it came from a file the journal does not know the path of."""
    import os

    from kvmtune.host.door import Host
    from kvmtune.profile import shipped_profiles
    from kvmtune.tune.journal import read_profiles

    if not os.path.isdir(root):
        raise UsageError(f"--root: {root} is not a directory")
    profiles, problem = read_profiles(Host(root))
    if problem:
        raise UsageError(problem)
    if not profiles:
        raise UsageError("name a profile: kvmtune's journal names none applied here")
    if profiles[-1] not in shipped_profiles():
        raise UsageError(f"name the profile: '{profiles[-1]}', applied last, came from a file (give its path)")
    return profiles[-1]


def verify_result(opts: ApplyOptions) -> tuple[dict, int]:
    from kvmtune.watch.targets import verify_profile

    if not opts.profile and opts.profile_text is None:
        opts.profile = last_applied(opts.root)
    profile = load(opts)  # before the host: bad input never reads it
    plan, targets, profiles = verify_profile(_host(opts), profile, persist=opts.persist, force=opts.force)
    drift = [c for c in plan.changes if c.status != OK]
    out = result(plan, mode="check", msg=f"{len(drift)} settings drifted" if drift else "in place")
    out["drift"] = [c.to_json() for c in drift]
    out["profile"], out["profiles"], out["targets"] = profile.name, profiles, targets
    ready = True
    if profile.intents:  # the profile says what the host is for: judge that too
        ready = _verify_intents(opts, profile.intents, out)
    return out, EXIT_NOT_READY if drift or not ready else EXIT_OK


def _verify_intents(opts: ApplyOptions, intents: tuple, out: dict) -> bool:
    """Run the checks the profile's intents add or require; note them in ``out``; ready or not."""
    from kvmtune.checks.intents import INTENTS
    from kvmtune.commands.check import CheckOptions, check_report

    from kvmtune.checks import ESSENTIAL

    # The checks that decide readiness at all run too: without them the report is "not judged".
    own = list(dict.fromkeys([*ESSENTIAL, *(c for n in intents for c in (*INTENTS[n].adds, *INTENTS[n].blocking))]))
    report = check_report(CheckOptions(root=opts.root, only=own, intents=list(intents)), host_json=False)
    out["intents"], out["ready_for"] = list(report.intents), list(report.ready_for)
    out["intent_checks"] = [c.to_json() for c in report.checks if c.id != "ready"]
    if not report.ready:
        verdict = next(c for c in report.checks if c.id == "ready")
        out["msg"] += f"; {verdict.detail}"
    return report.ready


def rollback_result(opts: ApplyOptions) -> tuple[dict, int]:
    from kvmtune.tune.change import Plan
    from kvmtune.tune.engine import rollback

    plan, debris = rollback(_host(opts), wait=opts.wait, check=opts.check)
    cleaned = f"; removed what an interrupted run left: {', '.join(debris)}" if debris else ""
    if plan is None:
        return result(Plan(None, [], []), mode="apply",
                      msg="nothing to roll back: kvmtune changed nothing here" + cleaned), EXIT_OK
    failed = [c for c in plan.changes if c.status == FAILED]
    mode = "check" if opts.check else "apply"
    blocked = [c for c in plan.changes if c.status == BLOCKED]
    msg = (f"failed: {failed[0].target}: {failed[0].detail}" if failed
           else f"blocked: {blocked[0].target}: {blocked[0].detail}" if blocked and not opts.check
           else _summary(plan, "would restore" if opts.check else "restored") + cleaned)
    failed = failed or (blocked if not opts.check else [])
    return result(plan, mode=mode, failed=bool(failed), msg=msg), EXIT_NOT_READY if failed else EXIT_OK


def run_apply(opts: ApplyOptions) -> int:
    return _emit(*apply_result(opts), opts)


def run_verify(opts: ApplyOptions) -> int:
    return _emit(*verify_result(opts), opts)


def run_rollback(opts: ApplyOptions) -> int:
    return _emit(*rollback_result(opts), opts)


class ProfilesOptions(Options):
    def __init__(self, json: bool = False):
        self.json = json


def run_profiles(opts: ProfilesOptions) -> int:
    from kvmtune.profile import load_profile, shipped_profiles

    rows = []
    for name, path in shipped_profiles().items():
        rows.append({"name": name, "path": path, "description": load_profile(name).description})
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json({"profiles": rows})
    else:
        for row in rows:
            print(f"{row['name']:16} {row['description']}")
    return EXIT_OK


def _summary(plan, verb: str) -> str:
    n = sum(c.status == PENDING if verb.startswith("would") else done_by_run(c) for c in plan.changes)
    blocked = sum(c.status == BLOCKED for c in plan.changes)
    text = f"{verb} {n} of {len(plan.changes)} settings" if n else "nothing to change: the host already matches"
    return text + (f"; {blocked} blocked" if blocked else "")


def _emit(out: dict, code: int, opts: ApplyOptions) -> int:
    if opts.format == "prometheus":
        import sys
        import time

        from kvmtune.render.verify_prometheus import render_verify_prometheus

        text = render_verify_prometheus(out, time.time())
        if opts.output is None:
            sys.stdout.write(text)
        else:
            from kvmtune.commands.check import write_output

            write_output(opts.output, text)
        return code
    if opts.json or opts.format == "json":
        from kvmtune.render.json_out import write_json

        write_json(out)
    else:
        from kvmtune.render.plan_text import render_result

        render_result(out, show_diff=opts.diff)
    return code
