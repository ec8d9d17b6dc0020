"""``kvmtune migration RESULT...``: the fleet's migration domains (issue #21)."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_NOT_READY, EXIT_OK


class MigrationOptions(Options):
    def __init__(self, paths: list[str] | None = None, json: bool = False, strict: bool = False,
                 guest: str | None = None):
        self.paths = list(paths or [])
        self.json = json
        self.strict = strict
        self.guest = guest


def run_migration(opts: MigrationOptions) -> int:
    from kvmtune.fleet.migration import migration

    guest = None
    if opts.guest is not None:
        from kvmtune.fleet.guest import parse_guest

        guest = parse_guest(opts.guest)  # bad input: exit 2 before any file is read
    from kvmtune.fleet.load import collector_paused

    out = collector_paused(lambda: migration(opts.paths, guest))
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json(out)
    else:
        from kvmtune.render.migration_text import render_migration

        render_migration(out, guest)
    # Every host in a domain: 0. A host outside (or an unreadable result): 1; with --strict, a
    # warning too.
    return EXIT_NOT_READY if out["excluded"] or (opts.strict and out["warnings"]) else EXIT_OK
