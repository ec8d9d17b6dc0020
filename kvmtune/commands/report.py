"""``kvmtune report PATH...``: aggregate many hosts' check results."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK


class PathsOptions(Options):
    """report and cpu-baseline: result files or directories, and how to print."""

    def __init__(self, paths: list[str] | None = None, json: bool = False, assume_undecided: bool = False,
                 strict: bool = False):
        self.paths = list(paths or [])
        self.json = json
        self.assume_undecided = assume_undecided
        self.strict = strict



def run_report(opts: PathsOptions) -> int:
    from kvmtune.fleet.load import collector_paused
    from kvmtune.report import summarise

    summary = collector_paused(lambda: summarise(opts.paths, opts.strict))
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(summary)
    else:
        from kvmtune.render.report_text import render_report

        render_report(summary)
    counts = summary["counts"]
    return EXIT_NOT_READY if counts["not_ready"] or counts["invalid"] else EXIT_OK
