"""watch for people: a line per drifted target with who changed it, what --reapply restored;
or, for --install, the units written and how they run. On a terminal a long line is folded
between words only (a path stays whole); piped, each stays one line for grep."""

from __future__ import annotations

import sys

from kvmtune.render.plan_text import render_result, write_folded


def render_watch(out: dict, stream=None) -> None:
    stream = stream or sys.stdout
    if "units" in out:  # --install
        render_result(out, stream=stream)
        for note in out["notes"]:
            stream.write(note + "\n")
        return
    for t in out["targets"]:
        if t["status"] != "ok":
            stream.write(f"{t['status'].upper():16} {t['target']}  has {_one(t['have'])}, wants {_one(t['want'])}\n")
            if t["owner"]:
                write_folded(stream, "", f"changed by {t['owner']}")
    for r in out["restored"]:
        failed = r["status"] == "failed"
        stream.write(f"{'NOT RESTORED' if failed else 'RESTORED':16} {r['target']}  {_one(r['from'])} -> {_one(r['to'])}\n")
        if failed:
            write_folded(stream, "", r["detail"])
        if r["owner"]:
            write_folded(stream, "", f"had been changed by {r['owner']}")
    if out["policy"]:
        stream.write(out["policy"] + "\n")
    stream.write(out["msg"] + "\n")


def _one(value) -> str:
    if value is None:
        return "nothing"
    text = str(value).strip()
    return f"({len(text.splitlines())} lines)" if "\n" in text else text
