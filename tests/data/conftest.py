"""Fixtures for the data-layer tests: a private BIHM_HOME and small file writers."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(autouse=True)
def bihm_home(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty BIHM_HOME (so the data folder is tmp_path/home/data)."""
    home = tmp_path / "home"
    monkeypatch.setenv("BIHM_HOME", str(home))
    monkeypatch.delenv("BIHM_ASSETS_DIR", raising=False)
    return home


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def binary(rng: np.random.Generator, n: int, d: int, p: float = 0.3) -> np.ndarray:
    return (rng.random((n, d)) < p).astype(np.uint8)


def leftovers(folder: Path) -> list[str]:
    """Files/folders under `folder` (recursively), to check that a failure wrote nothing."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---- a minimal MATLAB level-5 writer, written from the format description, to test the reader ----

def _element(mtype: int, payload: bytes, small_ok: bool = True) -> bytes:
    if small_ok and len(payload) <= 4:
        return struct.pack("<HH", mtype, len(payload)) + payload.ljust(4, b"\0")
    pad = (-len(payload)) % 8
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * pad


_MI = {np.dtype("uint8"): (2, 9), np.dtype("float64"): (9, 6), np.dtype("int32"): (5, 12)}  # (miType, mxClass)


def mat_matrix(name: str, a: np.ndarray) -> bytes:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[:, None]
    mtype, mclass = _MI[a.dtype]
    body = _element(6, struct.pack("<II", mclass, 0), small_ok=False)
    body += _element(5, np.asarray(a.shape, dtype="<i4").tobytes(), small_ok=False)
    body += _element(1, name.encode())
    body += _element(mtype, a.astype(a.dtype.newbyteorder("<")).tobytes(order="F"), small_ok=False)
    return _element(14, body, small_ok=False)


def write_mat(path: Path, arrays: dict[str, np.ndarray], compress: bool = True, cell_first: bool = True) -> Path:
    header = b"MATLAB 5.0 MAT-file, written by the bihm tests".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    out = header
    if cell_first:  # a cell array (class 1) the reader must skip
        body = _element(6, struct.pack("<II", 1, 0), small_ok=False) + _element(5, struct.pack("<ii", 1, 1), small_ok=False)
        body += _element(1, b"names")
        out += _element(14, body, small_ok=False)
    for name, a in arrays.items():
        el = mat_matrix(name, a)
        if compress:
            z = zlib.compress(el)
            out += struct.pack("<II", 15, len(z)) + z
        else:
            out += el
    path.write_bytes(out)
    return path
