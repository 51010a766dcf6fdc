"""The on-disk format of every binary data set: bit-packed rows in a reproducible `.npz`.

A binary split of shape (N, D) is stored as ``np.packbits(x, axis=1)`` of shape (N, ceil(D/8));
the archive also holds ``dim`` (D) so the padding bits can be dropped on load. Labels, when a set
has them, are stored as ``y_<split>`` (uint8). Grey images (mnist-dyn) are stored unpacked as uint8.

`write_npz` writes the same layout as ``np.savez_compressed`` (a zip of ``.npy`` members, deflate),
but with fixed member timestamps and the strongest deflate level, so rebuilding an asset from the
same arrays gives the same bytes and the same SHA-256.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bihm_app.data.integrity import atomic_writer
from bihm_app.errors import DataError

SPLITS = ("train", "valid", "test")
_EPOCH_1980 = (1980, 1, 1, 0, 0, 0)


def pack_rows(x: np.ndarray) -> np.ndarray:
    """(N, D) 0/1 uint8 -> (N, ceil(D/8)) uint8, big-endian bit order within each byte."""
    return np.packbits(x.astype(np.uint8, copy=False), axis=1)


def unpack_rows(packed: np.ndarray, dim: int) -> np.ndarray:
    """Inverse of `pack_rows`: (N, ceil(D/8)) -> (N, D) uint8 0/1."""
    return np.unpackbits(packed, axis=1, count=dim)


def write_npz_to(fh: BinaryIO, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` as a compressed, byte-reproducible `.npz` into an open binary file."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[key], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH_1980)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write `arrays` to `path` atomically (temporary file, fsync, rename)."""
    with atomic_writer(path) as fh:
        write_npz_to(fh, arrays)


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """Read every array of an `.npz` (no pickle); a broken archive becomes one `DataError` line."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DataError(f"{what}: file {path} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{what}: {path} is not a readable .npz archive ({exc})") from None


def pack_splits(
    splits: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray | None] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of a packed data-set archive: packed splits, ``dim`` and optional ``y_<split>``."""
    dims = {x.shape[1] for x in splits.values()}
    if len(dims) != 1:
        raise DataError(f"splits have different dimensions: {sorted(dims)}")
    arrays: dict[str, np.ndarray] = {"dim": np.array(dims.pop(), dtype=np.int64)}
    for split, x in splits.items():
        arrays[split] = pack_rows(x)
    for split, y in (labels or {}).items():
        if y is not None:
            arrays[f"y_{split}"] = np.asarray(y, dtype=np.uint8)
    return arrays


def unpack_splits(
    arrays: Mapping[str, np.ndarray], what: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Inverse of `pack_splits`: ({split: (N, D) uint8}, {split: labels})."""
    if "dim" not in arrays:
        raise DataError(f"{what}: archive has no 'dim' entry (not a bihm packed data set)")
    dim_arr = np.asarray(arrays["dim"])
    if dim_arr.size != 1 or dim_arr.dtype.kind not in "iu" or int(dim_arr.reshape(())) < 1:
        raise DataError(f"{what}: archive has an invalid 'dim' entry {dim_arr!r}")
    dim = int(dim_arr.reshape(()))
    splits: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split in SPLITS:
        if split not in arrays:
            raise DataError(f"{what}: archive has no '{split}' split")
        packed = arrays[split]
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != (dim + 7) // 8:
            raise DataError(f"{what}: split '{split}' has shape {packed.shape}, not packed rows of {dim} bits")
        splits[split] = unpack_rows(packed, dim)
        if f"y_{split}" in arrays:
            labels[split] = arrays[f"y_{split}"]
    return splits, labels
