"""Readers for the files a data set can be imported from.

Each returns a `RawData`: named arrays for the splits the file holds (``train``/``valid``/``test``,
or just ``all`` when it holds one array) and optional labels. Validation (binary values, equal
dimensions) happens afterwards, in one place (`validate`).

Formats: ``.npz`` (keys train/valid/test, optional y_<split>, or one array), ``.npy``,
``.csv``/``.txt``/``.data`` (0/1 rows, comma or whitespace separated), ``.amat`` (text rows, or a
MATLAB file as some copies are), ``.mat``, ``.h5``/``.hdf5`` (datasets train/valid/test or one).
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bihm_app.data.limits import ReadLimits
from bihm_app.errors import DataError
from bihm_app.safe_files import FileProblem, check_regular, hdf5_link_problem, open_hdf5, open_regular_file

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
    by_lower: dict[str, list[str]] = {}
    for k in arrays:
        by_lower.setdefault(k.lower(), []).append(k)
    splits: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for table, out in ((_SPLIT_KEYS, splits), (_LABEL_KEYS, labels)):
        for split, keys in table.items():
            found = [name for k in keys for name in by_lower.get(k, [])]
            if len(found) > 1:  # "train" and "Train", or "train" and "x_train": which one was meant?
                kind = "labels" if table is _LABEL_KEYS else "rows"
                raise DataError(f"{what}: arrays {', '.join(repr(n) for n in sorted(found))} could each be the "
                                f"{split} {kind}; keep one (or rename the others)")  # fmt: skip
            if found and (table is _SPLIT_KEYS or split in splits):
                out[split] = arrays[found[0]] if table is _SPLIT_KEYS else np.asarray(arrays[found[0]]).reshape(-1)
    if splits:
        if "train" not in splits:
            raise DataError(f"{what}: has split(s) {', '.join(splits)} but no 'train'")
        return RawData(splits, labels)
    if len(arrays) == 1:
        return RawData({"all": next(iter(arrays.values()))})
    names = ", ".join(sorted(arrays)) or "none"
    raise DataError(f"{what}: expected arrays named train/valid/test or exactly one array, found: {names}")


_NPY_MAGIC = b"\x93NUMPY"
#: Arrays one .npz file may hold (a real one holds a handful).
MAX_NPZ_MEMBERS = 1000


def _npy_from(fh, what: str, available: int, limits: ReadLimits) -> np.ndarray:
    """One array in .npy format from ``fh``, whose data part may be at most ``available`` bytes.

    The header is parsed and its declared size checked against ``available`` and ``limits``
    before anything is allocated; the data is read with one bounded read.
    """
    import numpy.lib.format as npf

    head = fh.read(6)
    if head != _NPY_MAGIC:
        raise DataError(f"{what}: not a .npy array (no NumPy header{'; the file is empty' if not head else ''})")
    try:
        major, minor = (b for b in fh.read(2))
        if (major, minor) == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fh)
        elif (major, minor) in ((2, 0), (3, 0)):
            shape, fortran, dtype = npf.read_array_header_2_0(fh) if major == 2 else npf._read_array_header(fh, (3, 0))
        else:
            raise ValueError(f"unsupported .npy format version {major}.{minor}")
    except Exception as exc:  # noqa: BLE001 - numpy's parser: ValueError, SyntaxError, tokenize's TokenError, …
        raise DataError(f"{what}: damaged .npy header ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    if dtype.hasobject:
        raise DataError(f"{what}: holds Python objects (pickled data), which bihm never loads")
    if any(int(d) < 0 for d in shape):
        raise DataError(f"{what}: header declares a negative dimension {shape}")
    nbytes = math.prod(int(d) for d in shape) * dtype.itemsize
    header_len = fh.tell()
    if nbytes > available - header_len:
        raise DataError(
            f"{what}: header declares shape {tuple(shape)} of {dtype} ({nbytes:,} bytes), "
            f"but the file holds only {max(0, available - header_len):,} bytes of data"
        )
    limits.check_alloc(nbytes, what, f"shape {tuple(shape)} of {dtype}")
    data = fh.read(nbytes)
    if len(data) != nbytes:
        raise DataError(f"{what}: truncated .npy data ({len(data):,} of {nbytes:,} bytes)")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape, order="F" if fortran else "C")


def _read_npz(path: Path, limits: ReadLimits) -> RawData:
    return _from_named(read_npz_arrays(path, limits), str(path))


def read_npz_arrays(path: Path, limits: ReadLimits) -> dict[str, np.ndarray]:
    """{name: array} of an .npz file, read safely: regular file only, at most
    :data:`MAX_NPZ_MEMBERS` members, every declared size checked before reading, no pickles; any
    damage is one DataError line."""
    what = str(path)
    with _open(path) as fh:
        try:
            z = zipfile.ZipFile(fh)
        except Exception as exc:  # noqa: BLE001 - BadZipFile, struct and zlib errors of a damaged directory
            raise DataError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())[:160]})") from None
        with z:
            infos = [i for i in z.infolist() if not i.is_dir()]
            if len(infos) > MAX_NPZ_MEMBERS:
                raise DataError(f"{path}: holds {len(infos):,} arrays, more than the {MAX_NPZ_MEMBERS} a data file may hold")
            limits.check_alloc(sum(i.file_size for i in infos), what, "uncompressed size of its arrays")
            arrays: dict[str, np.ndarray] = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                try:
                    with z.open(info) as member:
                        arrays[key] = _npy_from(member, f"{path}: array '{key}'", info.file_size, limits)
                except DataError:
                    raise
                except Exception as exc:  # noqa: BLE001 - zipfile, zlib (a damaged stream), numpy: one line
                    raise DataError(f"{path}: not a readable .npz file ({' '.join(str(exc).split())[:160]})") from None
    return arrays


def _read_npy(path: Path, limits: ReadLimits) -> RawData:
    with _open(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            return RawData({"all": _npy_from(fh, str(path), size, limits)})
        except OSError as exc:
            raise DataError(f"{path}: not a readable .npy file ({exc})") from None


def _open(path: Path):
    """A binary file object of the regular file at ``path`` (never blocks on a FIFO)."""
    try:
        return open_regular_file(path)
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}") from None


_BOM = b"\xef\xbb\xbf"
_TEXT_BLOCK = 1 << 20


def _text_lines(fh, path: Path):
    """(line number, line) of a text file, read in blocks (a UTF-8 BOM is dropped)."""
    first = True
    rest = b""
    lineno = 0
    while True:
        block = fh.read(_TEXT_BLOCK)
        if first:
            if b"\x00" in block[:4096]:
                raise DataError(f"{path}: is a binary file, not text rows of 0/1 values")
            if block.startswith(_BOM):
                block = block[len(_BOM):]
            first = False
        if not block:
            break
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            lineno += 1
            yield lineno, line
    if rest:
        yield lineno + 1, rest


def read_text_rows(path: Path, limits: ReadLimits | None = None) -> np.ndarray:
    """Rows of 0/1 values separated by commas and/or whitespace, as a (N, D) uint8 array.

    Streams the file (memory: the 0/1 array, one byte a value); ragged rows, values that are not
    numbers or not 0/1 are a DataError naming the line and column (1-based).
    """
    limits = limits or ReadLimits.default()
    values = bytearray()  # one byte a value (a list of per-row arrays took ~360 bytes a row)
    width = first_line = None
    with _open(path) as fh:
        limits.check_file_size(os.fstat(fh.fileno()).st_size, str(path))
        for lineno, line in _text_lines(fh, path):
            row = _short_row(line) if len(line) <= _SHORT_LINE else _single_digit_row(line)
            if row is None:  # comments, multi-character values: token by token
                toks = line.replace(b",", b" ").split()
                if not toks or toks[0].startswith(b"#"):
                    continue
                row = _binary_row(toks, path, lineno).tobytes()
            elif not row:  # a blank line
                continue
            if width is None:
                width, first_line = len(row), lineno
            elif len(row) != width:
                raise DataError(
                    f"{path}: line {lineno} has {len(row)} values but line {first_line} has {width} (ragged rows)"
                )
            values += row
    if width is None:
        raise DataError(f"{path}: no data rows")
    return np.frombuffer(values, dtype=np.uint8).reshape(-1, width)


_SEPARATORS = np.frombuffer(b", \t\r\n\v\f", dtype=np.uint8)
_SHORT_LINE = 4096  # longer lines are read with numpy, never split into one bytes object a value
_DIGIT_VALUE = bytes.maketrans(b"01", b"\x00\x01")


def _short_row(line: bytes) -> bytes | None:
    """The values (one byte each) of a short line made only of single 0/1 digits and separators;
    b"" for a blank line, None for any other line. Plain bytes operations: ~1 µs a line, where
    numpy's per-call cost made a 300,000-line file take 8 s."""
    toks = line.replace(b",", b" ").split()
    joined = b"".join(toks)
    if len(joined) != len(toks) or joined.translate(None, b"01"):
        return None
    return joined.translate(_DIGIT_VALUE)


def _single_digit_row(line: bytes) -> bytes | None:
    """The values of a line made only of single 0/1 digits and separators (commas, whitespace), read
    without splitting it into tokens (a 30 MB line took 1.4 GB that way); None for any other line."""
    a = np.frombuffer(line, dtype=np.uint8)
    digit = (a == ord("0")) | (a == ord("1"))
    if not (digit | np.isin(a, _SEPARATORS)).all() or (digit[1:] & digit[:-1]).any():
        return None
    return (a[digit] - np.uint8(ord("0"))).tobytes()


def _binary_row(toks: list[bytes], path: Path, lineno: int) -> np.ndarray:
    joined = b"".join(toks)
    if len(joined) == len(toks):  # fast path: every value is one character
        digits = np.frombuffer(joined, dtype=np.uint8) - np.uint8(ord("0"))
        if (digits <= 1).all():
            return digits
    values = []
    for col, t in enumerate(toks, start=1):
        try:
            v = float(t)
        except ValueError:
            raise DataError(f"{path}: line {lineno}, column {col}: value is not a number: {t.decode(errors='replace')!r}") from None
        if v != 0 and v != 1:
            shown = "NaN" if v != v else repr(v)
            raise DataError(f"{path}: non-binary value {shown} at line {lineno}, column {col}; expected only 0 and 1")
        values.append(v)
    return np.asarray(values, dtype=np.uint8)


def read_hdf5_arrays(path: Path, limits: ReadLimits, top_only: bool = False) -> dict[str, np.ndarray]:
    """{name: array} of the numeric datasets (≥ 1-D) of an HDF5 file, read safely: regular file
    only, no links, declared sizes checked against the file and ``limits`` before reading."""
    try:
        f = open_hdf5(path)
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}") from None
    except (OSError, RuntimeError, ValueError, KeyError) as exc:  # h5py's errors for a damaged file
        raise DataError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())[:160]})") from None
    with f:
        try:
            return _hdf5_arrays(f, path, limits, top_only)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: damaged HDF5 file ({' '.join(str(exc).split())[:160]})") from None


def _hdf5_arrays(f, path: Path, limits: ReadLimits, top_only: bool) -> dict[str, np.ndarray]:
    """:func:`read_hdf5_arrays` of an open file (h5py's errors of a damaged file pass through)."""
    import h5py

    problem = hdf5_link_problem(f)
    if problem is not None:
        raise DataError(f"{path}: {problem}")
    size = os.stat(path).st_size
    wanted: dict[str, h5py.Dataset] = {}

    def visit(name, obj):
        if top_only and "/" in name:
            return
        if isinstance(obj, h5py.Dataset) and obj.shape is not None and len(obj.shape) >= 1 and obj.dtype.kind in "biuf":
            wanted[name] = obj

    f.visititems(visit)
    total = 0
    for name, d in wanted.items():
        nbytes = math.prod(int(n) for n in d.shape) * d.dtype.itemsize
        filtered = d.chunks is not None and d.id.get_create_plist().get_nfilters() > 0
        if not filtered and nbytes > size:
            raise DataError(f"{path}: dataset '{name}' declares shape {d.shape} ({nbytes:,} bytes), more than the file's {size:,} bytes")
        total += nbytes
    limits.check_alloc(total, str(path), "after decompression")
    try:
        return {name: d[()] for name, d in wanted.items()}
    except (OSError, ValueError, RuntimeError) as exc:
        raise DataError(f"{path}: unreadable dataset ({' '.join(str(exc).split())[:160]})") from None


def _read_hdf5(path: Path, limits: ReadLimits) -> RawData:
    arrays = read_hdf5_arrays(path, limits)
    top = {k: v for k, v in arrays.items() if "/" not in k}
    named = _from_named(top, str(path)) if any(
        k.lower() in sum(_SPLIT_KEYS.values(), ()) for k in top
    ) else None
    return named if named is not None else _from_named(arrays, str(path))


def _read_mat(path: Path, limits: ReadLimits) -> RawData:
    from bihm_app.data.matv5 import read_mat

    arrays = {k: v for k, v in read_mat(path, limits).items() if v.ndim >= 1}
    if not arrays:
        raise DataError(f"{path}: MAT-file holds no numeric arrays")
    # a MAT "one array" file may also carry unrelated small vectors; prefer the 2-D arrays
    two_d = {k: v for k, v in arrays.items() if v.ndim == 2 and min(v.shape) > 1}
    has_splits = any(k.lower() in sum(_SPLIT_KEYS.values(), ()) for k in arrays)
    return _from_named(arrays if has_splits else (two_d or arrays), str(path))


def read_file(path: Path, fmt: str | None = None, limits: ReadLimits | None = None) -> RawData:
    """Read a data file in format `fmt` (default: from its extension), within `limits`."""
    path = Path(path)
    limits = limits or ReadLimits.default()
    try:
        check_regular(path)
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}") from None
    fmt = fmt or detect_format(path)
    if fmt == "npz":
        return _read_npz(path, limits)
    if fmt == "npy":
        return _read_npy(path, limits)
    if fmt == "csv":
        return RawData({"all": read_text_rows(path, limits)})
    if fmt == "amat":
        from bihm_app.data.matv5 import is_mat_file

        return _read_mat(path, limits) if is_mat_file(path) else RawData({"all": read_text_rows(path, limits)})
    if fmt == "mat":
        return _read_mat(path, limits)
    if fmt == "hdf5":
        return _read_hdf5(path, limits)
    raise DataError(f"{path}: unknown format '{fmt}' (supported: {', '.join(FORMATS)})")
