"""The checkpoint's seal: size and SHA-256 of every byte after it, in the 512-byte HDF5 user block.

Written last, so any change to the file after it was saved (a bit flip, truncation, an edit, bytes
appended) is seen before the HDF5 library parses a single byte of it — HDF5 can loop forever on
some damaged metadata. ``head -c 200 file.h5`` shows it as plain text.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

__all__ = ["SEAL_SIZE", "SEAL_MAGIC", "seal_block", "write_seal", "parse_seal", "file_sha256", "has_hdf5_signature"]

#: Size of the HDF5 user block that holds the seal (HDF5 requires a power of two >= 512).
SEAL_SIZE = 512
SEAL_MAGIC = b"bihm-checkpoint-seal"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HASH_CHUNK = 1 << 22


def seal_block(size: int, digest: str) -> bytes:
    """The 512-byte seal of a file of ``size`` bytes whose bytes after the seal hash to ``digest``."""
    text = (
        SEAL_MAGIC + b" 1\n"
        + f"size {size}\nsha256 {digest}\n".encode()
        + b"This is a bihm checkpoint (HDF5 with a 512-byte user block); see docs/checkpoint-format.md\n"
    )
    return text.ljust(SEAL_SIZE, b"\0")


def file_sha256(fh, start: int) -> tuple[str, int]:
    """SHA-256 and length of the open file ``fh`` from byte ``start`` to its end."""
    h = hashlib.sha256()
    fh.seek(start)
    n = 0
    while True:
        block = fh.read(_HASH_CHUNK)
        if not block:
            break
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def write_seal(path: str | Path) -> None:
    """(Re)seal the file at ``path`` in place and fsync it (the writer seals in memory; tests reseal edits)."""
    with open(path, "r+b") as fh:
        digest, n = file_sha256(fh, SEAL_SIZE)
        fh.seek(0)
        fh.write(seal_block(SEAL_SIZE + n, digest))
        fh.flush()
        os.fsync(fh.fileno())


def parse_seal(block: bytes) -> dict | None:
    """``{"size": int, "sha256": str}`` from a seal block, or None if it is not a (valid) seal."""
    if not block.startswith(SEAL_MAGIC + b" "):
        return None
    try:
        text = block.split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    lines = text.split("\n")
    if lines[0] != SEAL_MAGIC.decode() + " 1":
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:3] if " " in line)
    try:
        size = int(fields["size"])
        sha = fields["sha256"]
    except (KeyError, ValueError):
        return None
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or size < SEAL_SIZE:
        return None
    return {"size": size, "sha256": sha}


def has_hdf5_signature(fh, size: int) -> bool:
    """Whether an HDF5 superblock signature sits where HDF5 looks for one (0, 512, 1024, …)."""
    offset = 0
    while offset + 8 <= size:
        fh.seek(offset)
        if fh.read(8) == _HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False
