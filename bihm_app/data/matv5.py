"""A small reader for the numeric matrices of MATLAB ``.mat`` files (level 5, and 7.3 via HDF5).

Enough for the files binary data sets come in (binarized MNIST ``.amat`` copies, Caltech-101
silhouettes): real numeric and logical arrays, compressed or not, either byte order. Cells,
structs, strings and sparse arrays are skipped. Format: "MAT-File Format", The MathWorks, 2013+.

The file is untrusted: it is read element by element (never whole), every declared size is
checked against the bytes that are really there and against the :class:`ReadLimits` before
anything is allocated, and decompression stops at the limit.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bihm_app.data.limits import ReadLimits
from bihm_app.errors import DataError
from bihm_app.safe_files import FileProblem, open_regular_file

_MI_MATRIX = 14
_MI_COMPRESSED = 15
_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_KNOWN_TYPES = set(range(1, 19)) - {8, 10, 11}  # miINT8 … miUTF32 (8, 10, 11 are reserved)
_NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE .. mxUINT64
_COMPLEX_FLAG = 0x0800
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Top-level elements read from one file before it is refused (a real one holds a few).
MAX_ELEMENTS = 10_000


def is_mat_file(path: Path) -> bool:
    """True when the file starts like a MATLAB 5+ MAT-file."""
    try:
        with open_regular_file(path) as fh:
            return fh.read(6) == b"MATLAB"
    except FileProblem as exc:
        raise DataError(f"{path}: {exc}") from None


def _element(buf: bytes, pos: int, e: str, what: str) -> tuple[int, bytes, int]:
    """(type, payload, position of the next element) of the data element at `pos` of `buf`."""
    if pos + 8 > len(buf):
        raise DataError(f"{what}: truncated MAT-file element at byte {pos}")
    (first,) = struct.unpack_from(e + "I", buf, pos)
    if first >> 16:  # small data element: type and size in one word, payload in the next 4 bytes
        nbytes, mtype = first >> 16, first & 0xFFFF
        if nbytes > 4:
            raise DataError(f"{what}: malformed small MAT-file element at byte {pos} ({nbytes} bytes in 4)")
        return mtype, buf[pos + 4 : pos + 4 + nbytes], pos + 8
    mtype = first
    (nbytes,) = struct.unpack_from(e + "I", buf, pos + 4)
    start = pos + 8
    if start + nbytes > len(buf):
        raise DataError(f"{what}: truncated MAT-file element at byte {pos}")
    padded = nbytes if mtype == _MI_COMPRESSED else (nbytes + 7) // 8 * 8
    return mtype, buf[start : start + nbytes], start + padded


def _matrix(body: bytes, e: str, what: str, limits: ReadLimits) -> tuple[str, np.ndarray] | None:
    """Parse an miMATRIX payload; None for classes other than real numeric/logical arrays."""
    _, flags, pos = _element(body, 0, e, what)
    _, dims_raw, pos = _element(body, pos, e, what)
    _, name_raw, pos = _element(body, pos, e, what)
    name = name_raw.decode("ascii", errors="replace")
    if len(flags) < 4:
        raise DataError(f"{what}: variable {name!r} has a malformed array-flags element ({len(flags)} bytes, need 8)")
    (flag_word,) = struct.unpack_from(e + "I", flags, 0)
    cls = flag_word & 0xFF
    if cls not in _NUMERIC_CLASSES or flag_word & _COMPLEX_FLAG:
        return None
    if len(dims_raw) % 4 or not dims_raw:
        raise DataError(f"{what}: variable {name!r} has a dimensions element of {len(dims_raw)} bytes (not a multiple of 4)")
    dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=e + "i4"))
    if any(d < 0 for d in dims):
        raise DataError(f"{what}: variable {name!r} has negative dimensions {dims}")
    mtype, real, _ = _element(body, pos, e, what)
    if mtype not in _DTYPES:
        raise DataError(f"{what}: unsupported MAT data type {mtype} in variable {name!r}")
    dtype = np.dtype(e + _DTYPES[mtype])
    count = math.prod(dims)  # Python integers: never overflows
    if len(real) % dtype.itemsize or len(real) // dtype.itemsize != count:
        raise DataError(f"{what}: variable {name!r} has {len(real) // dtype.itemsize:,} values for shape {dims}")
    values = np.frombuffer(real, dtype=dtype)
    return name, values.reshape(dims, order="F").astype(dtype.newbyteorder("="))


def _inflate(payload: bytes, e: str, what: str, pos: int, budget: int) -> bytes:
    """The element inside one miCOMPRESSED element, decompressed only as far as it declares.

    Its tag (first 8 bytes) says how big it is; more than ``budget`` is refused before
    decompressing further, and a stream that inflates past what it declared is cut there.
    """
    d = zlib.decompressobj()
    out = bytearray()
    need = 8
    data = payload
    try:
        while len(out) < need:
            piece = d.decompress(data, min(need - len(out), 1 << 20))
            data = d.unconsumed_tail
            out += piece
            if need == 8 and len(out) >= 8:
                (first,) = struct.unpack_from(e + "I", out, 0)
                if not first >> 16:  # a regular element: its declared size follows
                    (nbytes,) = struct.unpack_from(e + "I", out, 4)
                    need = 8 + nbytes
                    if need > budget:
                        raise DataError(
                            f"{what}: compressed element at byte {pos} expands to {need:,} bytes, more than the "
                            f"{budget:,} allowed (pass --max-bytes to raise the limit)"
                        )
            if not piece and not data:
                break
    except zlib.error as exc:
        raise DataError(f"{what}: corrupt compressed MAT-file element at byte {pos} ({exc})") from None
    return bytes(out[:need])


def _read_v73(path: Path, limits: ReadLimits) -> dict[str, np.ndarray]:
    from bihm_app.data.readers import read_hdf5_arrays

    # MATLAB stores column-major: the HDF5 shape is reversed
    return {k: np.asarray(v).T for k, v in read_hdf5_arrays(path, limits, top_only=True).items()}


def read_mat(path: Path, limits: ReadLimits | None = None) -> dict[str, np.ndarray]:
    """{name: array} of the real numeric variables of a MAT-file."""
    what = str(path)
    limits = limits or ReadLimits.default()
    try:
        fh = open_regular_file(path)
    except FileProblem as exc:
        raise DataError(f"{what}: {exc}") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        limits.check_file_size(size, what)
        head = fh.read(128)
        fh.seek(512)
        if fh.read(8) == _HDF5_SIGNATURE:
            fh.close()
            return _read_v73(path, limits)
        if len(head) < 128 or not head.startswith(b"MATLAB"):
            raise DataError(f"{what}: not a MATLAB MAT-file")
        marker = head[126:128]
        if marker == b"IM":
            e = "<"
        elif marker == b"MI":
            e = ">"
        else:
            raise DataError(f"{what}: MAT-file has an unknown byte-order marker {marker!r}")
        out: dict[str, np.ndarray] = {}
        used = 0  # bytes of element payloads held (decompressed), against limits.max_bytes
        pos = 128
        fh.seek(pos)
        for _ in range(MAX_ELEMENTS + 1):
            tag = fh.read(8)
            if len(tag) < 8:
                break
            (first,) = struct.unpack(e + "I", tag[:4])
            if first >> 16:  # a small element at top level: nothing we read
                pos += 8
                continue
            (nbytes,) = struct.unpack(e + "I", tag[4:])
            if first not in _KNOWN_TYPES:
                raise DataError(f"{what}: unknown MAT-file element type {first} at byte {pos} (damaged file)")
            if pos + 8 + nbytes > size:
                raise DataError(f"{what}: truncated MAT-file element at byte {pos} (declares {nbytes:,} bytes)")
            padded = nbytes if first == _MI_COMPRESSED else (nbytes + 7) // 8 * 8
            if first not in (_MI_MATRIX, _MI_COMPRESSED):
                pos += 8 + padded
                fh.seek(pos)
                continue
            limits.check_alloc(used + nbytes, what, f"element at byte {pos}")
            payload = fh.read(nbytes)
            mtype = first
            if mtype == _MI_COMPRESSED:
                inner = _inflate(payload, e, what, pos, limits.max_bytes - used)
                mtype, payload, _ = _element(inner, 0, e, what)
            used += len(payload)
            if mtype == _MI_MATRIX and payload:
                try:
                    parsed = _matrix(payload, e, what, limits)
                except (struct.error, ValueError) as exc:
                    raise DataError(f"{what}: malformed MAT-file matrix at byte {pos} ({' '.join(str(exc).split())[:120]})") from None
                if parsed is not None:
                    out[parsed[0]] = parsed[1]
            pos += 8 + padded
            fh.seek(pos)
        else:
            raise DataError(f"{what}: more than {MAX_ELEMENTS:,} elements (damaged file)")
    return out
