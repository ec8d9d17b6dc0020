"""Atomic file replacement: a reader sees the old content or the new, never a mix.

The text is staged in ``.<name>.kvmtune-tmp`` beside the file (same directory, so the
rename cannot cross file systems), created exclusively and without following a link,
given its mode, owner and extended attributes, fsynced, renamed over the file, and the
directory fsynced so the rename survives a crash. The temp name is fixed, not random,
so that whoever finds it after a kill (rollback, the next run) knows it is kvmtune's.
ansible's write_fstab with a plain open(..., 'w') is the counter-example.
"""

from __future__ import annotations

import os

from kvmtune.host.owned import TEMP_SUFFIX


def replace_at(dir_fd: int, name: str, data: bytes, mode: int, owner: tuple[int, int] | None = None,
               xattrs: tuple[tuple[str, bytes], ...] = ()) -> None:
    """Replace ``name`` in the directory ``dir_fd`` with ``data``; OSError on failure."""
    tmp = f".{name}{TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    except FileExistsError:  # left by a killed run: it is ours by its name
        os.unlink(tmp, dir_fd=dir_fd)
        fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if owner is not None:
                os.fchown(fd, *owner)  # before the mode: chown clears set-id bits
            os.fchmod(fd, mode)
            for key, value in xattrs:
                os.setxattr(fd, key, value)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.fsync(dir_fd)


def atomic_write(path: str, data: bytes | str, mode: int = 0o644) -> None:
    """An operator's output file (``check --output``): same rules, outside any host root."""
    if isinstance(data, str):
        data = data.encode()
    directory, name = os.path.split(os.path.abspath(path))
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        replace_at(dir_fd, name, data, mode)
    finally:
        os.close(dir_fd)


def check_output_dir(directory: str) -> None:
    """An output directory must not exist, or be empty: kvmtune never mixes its output
    with what is already there."""
    from kvmtune.errors import UsageError

    if os.path.lexists(directory) and (not os.path.isdir(directory) or os.path.islink(directory)
                                       or os.listdir(directory)):
        raise UsageError(f"{directory}: exists and is not an empty directory")


def write_snapshot_tree(directory: str, dirs: list[str], files: dict[str, str], manifest: dict) -> None:
    """A captured host tree (kvmtune.snapshot): directories, files as read, the manifest.
    Written into a directory that is new or empty; never through a link."""
    import json

    os.makedirs(directory, exist_ok=True)
    root = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for rel in sorted(set(dirs) | {f.rpartition("/")[0] for f in files if "/" in f}):
            parts = rel.split("/")
            for i in range(1, len(parts) + 1):
                try:
                    os.mkdir("/".join(parts[:i]), 0o755, dir_fd=root)
                except FileExistsError:
                    pass
        for rel, text in files.items():
            fd = os.open(rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=root)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(text)
        replace_at(root, "kvmtune-snapshot.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(),
                   0o644)
    finally:
        os.close(root)


TAR_MODES = {".tar": "w", ".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz"}


def tar_mode(tar_path: str) -> str:
    """tarfile's write mode for the name; a name kvmtune cannot honour (x.zip, x.tar.bz2) is
    refused rather than given a plain tar under a name that promises something else."""
    for suffix, mode in TAR_MODES.items():
        if tar_path.endswith(suffix):
            return mode
    from kvmtune.errors import UsageError

    raise UsageError(f"--tar {tar_path}: the name must end in {', '.join(TAR_MODES)} "
                     "(the ending decides the compression)")


def to_tar(directory: str, tar_path: str) -> None:
    """The snapshot as one tar file (compressed by its name: .tar.gz, .tgz, .tar.xz), made in
    memory (a snapshot is a few MiB) and written as any output file is: atomically, replacing
    a link at its name rather than writing through it into the link's target."""
    import io
    import tarfile

    mode = tar_mode(tar_path)

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.isfile():
            info.mode = 0o644
        elif info.isdir():
            info.mode = 0o755
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name in sorted(os.listdir(directory)):
            tar.add(os.path.join(directory, name), arcname=name, filter=plain)
    atomic_write(tar_path, buffer.getvalue())
