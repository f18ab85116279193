"""Durable file replacement, and noticing when another process replaced a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file.

    A temporary file in the same directory gets `mode` (and `owner`, uid and gid, when given:
    a non-root caller keeps at least the group), is fsynced, renamed over `path`, and the
    directory is fsynced so the rename itself survives a power cut.
    """
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        if owner is not None and owner != (os.geteuid(), os.getegid()):
            try:
                os.fchown(fd, *owner)
            except PermissionError:
                os.fchown(fd, -1, owner[1])
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def signature(path: Path) -> tuple[int, int, int] | None:
    """A file's identity (inode, size, mtime): it changes when another process replaces it."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def reserve(path: Path, size: int) -> None:
    """Write `size` bytes to `path` and fsync them: the space is the disk's promise to us.

    Deleting the file hands the space back for a write that must not fail; OSError (a full
    disk, a read-only one) when it cannot be had.
    """
    try:
        with path.open("wb") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
