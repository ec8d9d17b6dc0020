"""Before/after text of a plan, in the form Ansible's --diff renders."""

from __future__ import annotations

from kvmtune.tune.change import OK


def plan_diff(plan) -> dict[str, str]:
    before, after = [], []
    for c in plan.changes:
        if c.status == OK:
            continue
        if c.WHOLE_TEXT:
            before.append(f"# {c.target}\n" + _text(c.shown(c.before)))
            after.append(f"# {c.target}\n" + _text(c.shown(c.after)))
        else:
            before.append(f"{c.target} = {_show(c.shown(c.before))}\n")
            after.append(f"{c.target} = {_show(c.shown(c.after))}\n")
    return {"before": "".join(before), "after": "".join(after)}


def _text(value) -> str:
    return "(absent)\n" if value is None else value


def _show(value) -> str:
    return "(none)" if value is None else str(value)
