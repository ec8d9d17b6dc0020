"""watch for people: a line per drifted target with who changed it, what --reapply restored;
or, for --install, the units written and how they run."""

from __future__ import annotations

import sys


def render_watch(out: dict, stream=None) -> None:
    stream = stream or sys.stdout
    if "units" in out:  # --install
        from kvmtune.render.plan_text import render_result

        render_result(out, stream=stream)
        for note in out["notes"]:
            stream.write(note + "\n")
        return
    for t in out["targets"]:
        if t["status"] == "ok":
            continue
        stream.write(f"{t['status'].upper():16} {t['target']}  has {_one(t['have'])}, wants {_one(t['want'])}\n")
        if t["owner"]:
            stream.write(f"{'':16} changed by {t['owner']}\n")
    for r in out["restored"]:
        verb = "NOT RESTORED" if r["status"] == "failed" else "RESTORED"
        stream.write(f"{verb:16} {r['target']}  {_one(r['from'])} -> {_one(r['to'])}"
                     + (f"  (changed by {r['owner']})" if r["owner"] else "")
                     + (f": {r['detail']}" if r["status"] == "failed" else "") + "\n")
    if out["policy"]:
        stream.write(out["policy"] + "\n")
    stream.write(out["msg"] + "\n")


def _one(value) -> str:
    if value is None:
        return "nothing"
    text = str(value).strip()
    return f"({len(text.splitlines())} lines)" if "\n" in text else text
