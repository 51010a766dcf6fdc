"""A small reader for the numeric matrices of MATLAB ``.mat`` files (level 5, and 7.3 via HDF5).

Enough for the files binary data sets come in (binarized MNIST ``.amat`` copies, Caltech-101
silhouettes): real numeric and logical arrays, compressed or not, either byte order. Cells,
structs, strings and sparse arrays are skipped. Format: "MAT-File Format", The MathWorks, 2013+.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from bihm_app.errors import DataError

_MI_MATRIX = 14
_MI_COMPRESSED = 15
_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE .. mxUINT64
_COMPLEX_FLAG = 0x0800


def is_mat_file(path: Path) -> bool:
    """True when the file starts like a MATLAB 5+ MAT-file."""
    with open(path, "rb") as fh:
        return fh.read(6) == b"MATLAB"


def _element(buf: bytes, pos: int, e: str, what: str) -> tuple[int, bytes, int]:
    """(type, payload, position of the next element) of the data element at `pos`."""
    if pos + 8 > len(buf):
        raise DataError(f"{what}: truncated MAT-file element at byte {pos}")
    (first,) = struct.unpack_from(e + "I", buf, pos)
    if first >> 16:  # small data element: type and size in one word, payload in the next 4 bytes
        nbytes, mtype = first >> 16, first & 0xFFFF
        return mtype, buf[pos + 4 : pos + 4 + nbytes], pos + 8
    mtype = first
    (nbytes,) = struct.unpack_from(e + "I", buf, pos + 4)
    start = pos + 8
    if start + nbytes > len(buf):
        raise DataError(f"{what}: truncated MAT-file element at byte {pos}")
    padded = nbytes if mtype == _MI_COMPRESSED else (nbytes + 7) // 8 * 8
    return mtype, buf[start : start + nbytes], start + padded


def _matrix(body: bytes, e: str, what: str) -> tuple[str, np.ndarray] | None:
    """Parse an miMATRIX payload; None for classes other than real numeric/logical arrays."""
    _, flags, pos = _element(body, 0, e, what)
    _, dims_raw, pos = _element(body, pos, e, what)
    _, name_raw, pos = _element(body, pos, e, what)
    (flag_word,) = struct.unpack_from(e + "I", flags, 0)
    cls = flag_word & 0xFF
    if cls not in _NUMERIC_CLASSES or flag_word & _COMPLEX_FLAG:
        return None
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=e + "i4"))
    mtype, real, _ = _element(body, pos, e, what)
    if mtype not in _DTYPES:
        raise DataError(f"{what}: unsupported MAT data type {mtype} in variable {name_raw.decode(errors='replace')}")
    values = np.frombuffer(real, dtype=e + _DTYPES[mtype])
    if values.size != int(np.prod(dims)):
        raise DataError(f"{what}: variable {name_raw.decode(errors='replace')} has {values.size} values for shape {dims}")
    return name_raw.decode("ascii", errors="replace"), values.reshape(dims, order="F").astype(values.dtype.newbyteorder("="))


def _read_v73(path: Path, what: str) -> dict[str, np.ndarray]:
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        for key, obj in f.items():
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "biuf" and obj.ndim >= 1:
                out[key] = np.asarray(obj[()]).T  # MATLAB stores column-major: HDF5 shape is reversed
    return out


def read_mat(path: Path) -> dict[str, np.ndarray]:
    """{name: array} of the real numeric variables of a MAT-file."""
    what = str(path)
    import h5py

    if h5py.is_hdf5(path):
        return _read_v73(path, what)
    buf = path.read_bytes()
    if len(buf) < 128 or not buf.startswith(b"MATLAB"):
        raise DataError(f"{what}: not a MATLAB MAT-file")
    marker = buf[126:128]
    if marker == b"IM":
        e = "<"
    elif marker == b"MI":
        e = ">"
    else:
        raise DataError(f"{what}: MAT-file has an unknown byte-order marker {marker!r}")
    out: dict[str, np.ndarray] = {}
    pos = 128
    while pos + 8 <= len(buf):
        mtype, payload, pos = _element(buf, pos, e, what)
        if mtype == _MI_COMPRESSED:
            try:
                inner = zlib.decompress(payload)
            except zlib.error as exc:
                raise DataError(f"{what}: corrupt compressed MAT-file element ({exc})") from None
            mtype, payload, _ = _element(inner, 0, e, what)
        if mtype == _MI_MATRIX and payload:
            parsed = _matrix(payload, e, what)
            if parsed is not None:
                out[parsed[0]] = parsed[1]
    return out
