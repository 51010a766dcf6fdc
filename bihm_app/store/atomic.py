"""Atomic file writes: a temp file in the same folder, fsync, ``os.replace``, fsync of the folder.

A crash or a kill at any moment leaves either the old file or the new one, never a mixture;
checkpoints, metrics archives, status files and saved samples are all written this way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bihm_app.errors import BihmError, CheckpointError, DiskFull
from bihm_app.file_modes import default_file_mode  # re-exported: store.runs imports it from here
from bihm_app.safe_files import is_disk_full

__all__ = ["write_file_atomic", "default_file_mode", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def write_file_atomic(path: Path, produce: Callable[[], Any], where: str,
                      error: type[BihmError] = CheckpointError) -> None:  # fmt: skip
    """Write the bytes ``produce()`` returns to ``path``: temp file in the same folder (created
    first), fsync, ``os.replace``, fsync of the folder. On any error the temp file is removed and
    ``path`` is untouched; a full disk is :class:`~bihm_app.errors.DiskFull`, other write errors
    ``error("<where>: cannot write (…)")``."""
    path = Path(path)
    directory = path.parent
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, default_file_mode())
            view = memoryview(produce()).cast("B")
            while view:
                n = os.write(fd, view[: 1 << 24])
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(exc, OSError):
            if is_disk_full(exc):
                raise DiskFull(f"no space left on device while writing {path}") from None
            raise error(f"{where}: cannot write ({_one_line(exc)})") from None
        raise
    fsync_dir(directory)
