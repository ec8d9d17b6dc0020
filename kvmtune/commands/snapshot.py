"""``kvmtune snapshot DIR`` / ``--tar FILE``: capture what check reads, to judge it elsewhere."""

from __future__ import annotations

from kvmtune.commands import Options
from kvmtune.errors import EXIT_OK, UsageError


class SnapshotOptions(Options):
    def __init__(self, directory: str | None = None, tar: str | None = None, json: bool = False,
                 root: str = "/"):
        self.directory = directory
        self.tar = tar
        self.json = json
        self.root = root


def run_snapshot(opts: SnapshotOptions) -> int:
    import os
    import shutil
    import tempfile

    from kvmtune.host.atomic import tar_mode, to_tar
    from kvmtune.snapshot import capture

    if not os.path.isdir(opts.root):
        raise UsageError(f"--root: {opts.root} is not a directory")
    if (opts.directory is None) == (opts.tar is None):
        raise UsageError("name a directory to capture into (kvmtune snapshot DIR) or a tar file (--tar FILE)")
    if opts.tar is not None:
        tar_mode(opts.tar)  # before anything is captured
    if opts.tar is None:
        manifest, where = capture(opts.directory, opts.root), opts.directory
    else:
        work = tempfile.mkdtemp(prefix="kvmtune-snapshot-")
        try:
            manifest = capture(os.path.join(work, "host"), opts.root)
            to_tar(os.path.join(work, "host"), opts.tar)
        finally:
            shutil.rmtree(work)
        where = opts.tar
    if opts.json:
        from kvmtune.render.json_out import write_json

        write_json({"path": where, **manifest})
        return EXIT_OK
    print(f"captured {manifest['files']} files ({manifest['bytes'] / 1024:.0f} KiB) and "
          f"{len(manifest['nodes'])} device nodes of {manifest['hostname'] or 'this host'} into {where}")
    for rel, why in manifest["unreadable"].items():
        print(f"  not readable: /{rel}: {why}")
    print("not captured (only the live host answers): " + "; ".join(manifest["live_only"]))
    target = where if opts.tar is None else "DIR (after: mkdir DIR && tar -xf " + where + " -C DIR)"
    print(f"judge it anywhere: kvmtune --root {target} check")
    return EXIT_OK
