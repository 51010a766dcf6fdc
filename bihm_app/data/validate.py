"""Checks that turn arbitrary arrays into clean binary splits, or fail with one clear line."""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from bihm_app.errors import DataError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    """A data-set name: lower-case letters, digits, '_', '-', '.'; at most 64 characters."""
    if not _NAME_RE.match(name or ""):
        raise DataError(
            f"invalid data set name {name!r}: use lower-case letters, digits, '_', '-' or '.' (at most 64 characters)"
        )
    return name


def as_binary(x: np.ndarray, what: str) -> np.ndarray:
    """Return `x` as a (N, D) uint8 0/1 array, or raise `DataError` naming the first bad value."""
    x = np.asarray(x)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: values have type {x.dtype}, expected numbers 0/1")
    if x.ndim == 1 and x.size:
        raise DataError(f"{what}: is 1-D of length {x.shape[0]}; expected a 2-D array (rows = examples)")
    if x.ndim > 2:
        # images (N, H, W) are flattened row-major
        x = x.reshape(x.shape[0], -1)
    if x.ndim != 2:
        raise DataError(f"{what}: has shape {x.shape}; expected a 2-D array (rows = examples)")
    if x.shape[0] == 0:
        raise DataError(f"{what}: is empty (0 rows)")
    if x.shape[1] == 0:
        raise DataError(f"{what}: has dimension 0")
    # checked in blocks of rows, so the temporaries stay small next to a big array; rows and
    # columns in messages are 1-based, as a person counts them
    step = max(1, (1 << 22) // max(1, x.shape[1]))
    for r0 in range(0, x.shape[0], step):
        block = x[r0 : r0 + step]
        if block.dtype.kind == "f":
            nan = np.isnan(block)
            if nan.any():
                r, c = np.argwhere(nan)[0]
                raise DataError(f"{what}: contains NaN (first at row {r0 + r + 1}, column {c + 1})")
        bad = (block != 0) & (block != 1)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(
                f"{what}: non-binary value {block[r, c].item()!r} at row {r0 + r + 1}, column {c + 1}; expected only 0 and 1"
            )
    return x.astype(np.uint8, copy=False)


def check_splits(splits: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Validate every split and that all share one dimension."""
    clean = {s: as_binary(x, what if s == "all" else f"{what}: split '{s}'") for s, x in splits.items()}
    dims = {s: x.shape[1] for s, x in clean.items()}
    if len(set(dims.values())) > 1:
        detail = ", ".join(f"{s}={d}" for s, d in dims.items())
        raise DataError(f"{what}: splits have different dimensions ({detail})")
    return clean


def check_labels(labels: Mapping[str, np.ndarray | None], splits: Mapping[str, np.ndarray], what: str) -> dict:
    """Labels must be 1-D integers in 0..255 with one per row of their split."""
    clean: dict[str, np.ndarray] = {}
    for s, y in labels.items():
        if y is None:
            continue
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != splits[s].shape[0]:
            raise DataError(f"{what}: labels of split '{s}' have shape {y.shape}, expected ({splits[s].shape[0]},)")
        integral = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(np.isfinite(y) & (y == np.round(y)))))
        if not integral or (y.size and (y.min() < 0 or y.max() > 255)):
            raise DataError(f"{what}: labels of split '{s}' must be integers 0..255")
        clean[s] = y.astype(np.uint8)
    return clean
