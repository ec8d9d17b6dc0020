"""``kvmtune report PATH...``: aggregate many hosts' check results."""

from __future__ import annotations

from kvmtune.errors import EXIT_NOT_READY, EXIT_OK


class PathsOptions:
    """report and cpu-baseline: result files or directories, and how to print."""

    def __init__(self, paths: list[str] | None = None, json: bool = False, assume_undecided: bool = False):
        self.paths = list(paths or [])
        self.json = json
        self.assume_undecided = assume_undecided

    def __eq__(self, other) -> bool:
        return isinstance(other, PathsOptions) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return f"PathsOptions({vars(self)})"


def run_report(opts: PathsOptions) -> int:
    from kvmtune.report import summarise

    summary = summarise(opts.paths)
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(summary)
    else:
        from kvmtune.render.report_text import render_report

        render_report(summary)
    counts = summary["counts"]
    return EXIT_NOT_READY if counts["not_ready"] or counts["invalid"] else EXIT_OK
