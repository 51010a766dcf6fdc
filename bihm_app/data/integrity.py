"""Checksums and crash-safe writes.

`sha256_file` hashes in chunks; `verified_sha256` remembers a file's digest per process, keyed by
path, size and modification time, so verifying an asset costs one hash per process. Writers put
their bytes in a temporary file in the destination folder, fsync it and `os.replace` it, so a
reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from bihm_app.errors import DataError
from bihm_app.file_modes import default_file_mode
from bihm_app.safe_files import FileProblem, check_regular, open_regular_file

_CHUNK = 1 << 20
_digests: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        fh = open_regular_file(path)
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}") from None
    with fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: Path) -> str:
    """`sha256_file`, computed once per process for an unchanged file (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _digests.get(key)
    if digest is None:
        digest = sha256_file(path)
        _digests[key] = digest
    return digest


def verify_sha256(path: Path, expected: str, what: str) -> str:
    """Raise `DataError` unless the file exists and its SHA-256 equals `expected`; return the digest."""
    if not os.path.lexists(path):
        raise DataError(f"{what}: file {path} is missing")
    try:
        check_regular(path)
    except FileProblem as exc:
        raise DataError(f"{what}: {path} {exc}") from None
    digest = cached_sha256(path)
    if digest != expected.lower():
        raise DataError(
            f"{what}: checksum mismatch for {path} (expected sha256 {expected[:12]}…, got {digest[:12]}…); "
            "the file is corrupt or was changed"
        )
    return digest


def fsync_dir(folder: Path) -> None:
    """Flush a directory entry (after a rename) where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file next to `path`; on success fsync it and `os.replace` it into place.

    On any exception the temporary file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp creates 0600: give what open() would (0666 & ~umask)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(fh)` on a temporary file and move it to `path` atomically."""
    with atomic_writer(path) as fh:
        write(fh)
