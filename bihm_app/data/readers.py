"""Readers for the files a data set can be imported from.

Each returns a `RawData`: named arrays for the splits the file holds (``train``/``valid``/``test``,
or just ``all`` when it holds one array) and optional labels. Validation (binary values, equal
dimensions) happens afterwards, in one place (`validate`).

Formats: ``.npz`` (keys train/valid/test, optional y_<split>, or one array), ``.npy``,
``.csv``/``.txt``/``.data`` (0/1 rows, comma or whitespace separated), ``.amat`` (text rows, or a
MATLAB file as some copies are), ``.mat``, ``.h5``/``.hdf5`` (datasets train/valid/test or one).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bihm_app.errors import DataError

FORMATS = ("npz", "npy", "csv", "amat", "mat", "hdf5")
_EXT = {
    ".npz": "npz", ".npy": "npy", ".csv": "csv", ".txt": "csv", ".data": "csv", ".amat": "amat",
    ".mat": "mat", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
}
# Names under which files commonly store each split and its labels.
_SPLIT_KEYS = {
    "train": ("train", "x_train", "train_data", "trainx"),
    "valid": ("valid", "x_valid", "val", "validation", "val_data", "valid_data", "x_val"),
    "test": ("test", "x_test", "test_data", "testx"),
}
_LABEL_KEYS = {
    "train": ("y_train", "train_labels", "trainy"),
    "valid": ("y_valid", "val_labels", "valid_labels", "y_val"),
    "test": ("y_test", "test_labels", "testy"),
}


@dataclass
class RawData:
    """Arrays read from a file, before validation."""

    splits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def detect_format(path: Path) -> str:
    """The reader format for a file name (by extension)."""
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path}: unknown file type '{path.suffix}' (supported: {', '.join(sorted(_EXT))})"
        )
    return fmt


def _from_named(arrays: dict[str, np.ndarray], what: str) -> RawData:
    """Pick splits (and labels) out of named arrays, or the single array when there is one."""
    lower = {k.lower(): k for k in arrays}
    splits: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split, keys in _SPLIT_KEYS.items():
        for k in keys:
            if k in lower:
                splits[split] = arrays[lower[k]]
                break
    for split, keys in _LABEL_KEYS.items():
        for k in keys:
            if k in lower and split in splits:
                labels[split] = np.asarray(arrays[lower[k]]).reshape(-1)
                break
    if splits:
        if "train" not in splits:
            raise DataError(f"{what}: has split(s) {', '.join(splits)} but no 'train'")
        return RawData(splits, labels)
    if len(arrays) == 1:
        return RawData({"all": next(iter(arrays.values()))})
    names = ", ".join(sorted(arrays)) or "none"
    raise DataError(f"{what}: expected arrays named train/valid/test or exactly one array, found: {names}")


def _read_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return _from_named(arrays, str(path))


def _read_npy(path: Path) -> RawData:
    try:
        return RawData({"all": np.load(path, allow_pickle=False)})
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None


def read_text_rows(path: Path) -> np.ndarray:
    """Rows of numbers separated by commas and/or whitespace; ragged rows are an error."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path}: is a binary file, not text rows of 0/1 values")
    rows: list[list[bytes]] = []
    width = None
    for lineno, line in enumerate(raw.replace(b",", b" ").splitlines(), start=1):
        toks = line.split()
        if not toks or toks[0].startswith(b"#"):
            continue
        if width is None:
            width, first_line = len(toks), lineno
        elif len(toks) != width:
            raise DataError(
                f"{path}: line {lineno} has {len(toks)} values but line {first_line} has {width} (ragged rows)"
            )
        rows.append(toks)
    if not rows:
        raise DataError(f"{path}: no data rows")
    joined = b"".join(b"".join(t) for t in rows)
    if len(joined) == len(rows) * width:  # fast path: every value is one character
        codes = np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), width)
        digits = codes - np.uint8(ord("0"))
        if (digits <= 9).all():
            return digits
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, toks in enumerate(rows):
        try:
            values[i] = [float(t) for t in toks]
        except ValueError:
            bad = next(t for t in toks if not _is_number(t))
            raise DataError(f"{path}: row {i} has a value that is not a number: {bad.decode(errors='replace')!r}") from None
    return values


def _is_number(tok: bytes) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _read_hdf5(path: Path) -> RawData:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        arrays: dict[str, np.ndarray] = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.shape is not None and len(obj.shape) >= 1:
                arrays[name] = obj[()]

        f.visititems(visit)
    top = {k: v for k, v in arrays.items() if "/" not in k}
    named = _from_named(top, str(path)) if any(
        k.lower() in sum(_SPLIT_KEYS.values(), ()) for k in top
    ) else None
    return named if named is not None else _from_named(arrays, str(path))


def _read_mat(path: Path) -> RawData:
    from bihm_app.data.matv5 import read_mat

    arrays = {k: v for k, v in read_mat(path).items() if v.ndim >= 1}
    if not arrays:
        raise DataError(f"{path}: MAT-file holds no numeric arrays")
    # a MAT "one array" file may also carry unrelated small vectors; prefer the 2-D arrays
    two_d = {k: v for k, v in arrays.items() if v.ndim == 2 and min(v.shape) > 1}
    has_splits = any(k.lower() in sum(_SPLIT_KEYS.values(), ()) for k in arrays)
    return _from_named(arrays if has_splits else (two_d or arrays), str(path))


def read_file(path: Path, fmt: str | None = None) -> RawData:
    """Read a data file in format `fmt` (default: from its extension)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt == "npz":
        return _read_npz(path)
    if fmt == "npy":
        return _read_npy(path)
    if fmt == "csv":
        return RawData({"all": read_text_rows(path)})
    if fmt == "amat":
        from bihm_app.data.matv5 import is_mat_file

        return _read_mat(path) if is_mat_file(path) else RawData({"all": read_text_rows(path)})
    if fmt == "mat":
        return _read_mat(path)
    if fmt == "hdf5":
        return _read_hdf5(path)
    raise DataError(f"{path}: unknown format '{fmt}' (supported: {', '.join(FORMATS)})")
