"""Before/after text of a plan, in the form Ansible's --diff renders."""

from __future__ import annotations


def plan_diff(plan) -> dict[str, str]:
    before, after = [], []
    for c in plan.changes:
        if c.status == "ok":
            continue
        if c.kind == "file":
            before.append(f"# {c.target}\n" + (c.before if c.before is not None else "(absent)\n"))
            after.append(f"# {c.target}\n" + (c.after if c.after is not None else "(absent)\n"))
        else:
            before.append(f"{c.target} = {_show(c.before)}\n")
            after.append(f"{c.target} = {_show(c.after)}\n")
    return {"before": "".join(before), "after": "".join(after)}


def _show(value) -> str:
    return "(none)" if value is None else str(value)
