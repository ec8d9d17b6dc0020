"""``kvmtune report PATH...``: aggregate many hosts' check results."""

from __future__ import annotations

from kvmtune.errors import EXIT_NOT_READY, EXIT_OK


def run_report(paths: list[str], json_out: bool) -> int:
    from kvmtune.report import summarise

    summary = summarise(paths)
    if json_out:
        from kvmtune.render.json_out import write_json

        write_json(summary)
    else:
        from kvmtune.render.report_text import render_report

        render_report(summary)
    counts = summary["counts"]
    return EXIT_NOT_READY if counts["not_ready"] or counts["invalid"] else EXIT_OK
