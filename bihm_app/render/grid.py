"""Image grids: many small images (or data rows) laid out as one float picture.

Every function here returns a float array with values in [0, 1]: ``(H, W)`` for grey pictures,
``(H, W, 3)`` for colour ones (see :func:`bihm_app.render.png.colorize`). 1 is white, 0 black, so
binarized MNIST digits (1 = ink) come out white on black, as torchvision draws them.

Inputs may be numpy arrays, nested lists or torch tensors; tensors are converted by duck typing
(``.detach().cpu()``), so this module never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bihm_app.errors import DataError

__all__ = ["as_numpy", "to_unit_float", "image_stack", "make_grid", "rows_to_images", "side_by_side"]


def as_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach") and callable(x.detach):
        x = x.detach()
    if hasattr(x, "cpu") and callable(x.cpu):
        x = x.cpu()
    return np.asarray(x)


def to_unit_float(x: Any) -> np.ndarray:
    """Convert image values to float64 in [0, 1].

    bool and 0/1 integer arrays are taken as they are; an integer array whose maximum exceeds 1
    is read as 0..255. Floats are clipped to [0, 1]; NaN becomes 0.
    """
    a = as_numpy(x)
    if a.dtype == bool:
        return a.astype(np.float64)
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64)
        if a.size and a.max() > 1:
            a = a / 255.0
        return np.clip(a, 0.0, 1.0)
    a = np.asarray(a, dtype=np.float64)
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _square_shape(d: int) -> tuple[int, int]:
    """A near-square (height, width) that holds ``d`` values: width = ceil(sqrt(d))."""
    w = max(1, math.ceil(math.sqrt(d)))
    return max(1, math.ceil(d / w)), w


def rows_to_images(
    rows: Any, image_shape: tuple[int, int] | None = None, fill: float = 0.5
) -> np.ndarray:
    """Turn data rows ``(N, D)`` into images ``(N, h, w)``.

    With ``image_shape`` the rows are reshaped to it (rows shorter than ``h*w`` are padded);
    without it each row is padded to a near-square image (UCI rows, hidden layers). Padding
    cells get ``fill`` (mid-grey by default, so they stay apart from 0/1 data).
    """
    a = to_unit_float(rows)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise DataError(f"rows must be 2-D (N, D), got shape {tuple(a.shape)}")
    n, d = a.shape
    if image_shape is None:
        h, w = _square_shape(d)
    else:
        if len(image_shape) != 2 or min(image_shape) < 1:
            raise DataError(f"image shape {tuple(image_shape)} is not (height, width)")
        h, w = int(image_shape[0]), int(image_shape[1])
        if h * w < d:
            raise DataError(f"rows of {d} values do not fit an image of {h}x{w} = {h * w} pixels")
    out = np.full((n, h * w), float(fill))
    out[:, :d] = a
    return out.reshape(n, h, w)


def image_stack(images: Any, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Normalise the layouts :func:`make_grid` accepts to ``(N, H, W)`` floats in [0, 1]."""
    a = to_unit_float(images)
    if a.ndim == 4 and a.shape[1] == 1:  # (N, 1, H, W), the torch channel layout
        a = a[:, 0]
    if a.ndim == 3:
        if image_shape is not None and tuple(a.shape[1:]) != tuple(image_shape):
            a = rows_to_images(a.reshape(a.shape[0], -1), image_shape)
        return a
    if a.ndim in (1, 2):
        if image_shape is None and a.ndim == 2:
            d = a.shape[1]
            side = math.isqrt(d)
            if side * side != d:
                return rows_to_images(a)  # non-image rows: pad to near-square
            image_shape = (side, side)
        if image_shape is None:  # a single flat image
            return rows_to_images(a)
        return rows_to_images(a, image_shape)
    raise DataError(f"images must be (N, H, W) or (N, D), got shape {tuple(a.shape)}")


def make_grid(
    images: Any,
    ncol: int | None = None,
    pad: int = 1,
    pad_value: float = 0.5,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Lay ``N`` images out on a grid; returns an ``(H', W')`` float array in [0, 1].

    ``images`` is ``(N, H, W)``, ``(N, 1, H, W)`` or flat rows ``(N, H*W)`` (square rows are
    reshaped automatically; pass ``image_shape`` otherwise; other rows are padded to near-square
    images). ``ncol`` defaults to ceil(sqrt(N)). Every image is surrounded by ``pad`` pixels of
    ``pad_value``, so the grid is ``rows*(H+pad)+pad`` by ``ncol*(W+pad)+pad``; cells past the
    last image are filled with ``pad_value``.
    """
    stack = image_stack(images, image_shape)
    n, h, w = stack.shape
    if n == 0:
        raise DataError("cannot make a grid of 0 images")
    if pad < 0:
        raise DataError(f"grid padding must be >= 0, got {pad}")
    ncol = math.ceil(math.sqrt(n)) if ncol is None else int(ncol)
    if ncol < 1:
        raise DataError(f"grid columns must be >= 1, got {ncol}")
    ncol = min(ncol, n)
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), float(pad_value))
    for i in range(n):
        r, c = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = stack[i]
    return grid


def _to_rgb(g: np.ndarray) -> np.ndarray:
    return g if g.ndim == 3 else np.repeat(g[:, :, None], 3, axis=2)


def side_by_side(
    grids: Sequence[Any], gap: int = 4, pad_value: float = 0.5
) -> np.ndarray:
    """Place pictures left to right with ``gap`` columns of ``pad_value`` between them.

    Used for "original | masked | completion" in inpainting. Shorter pictures are padded at the
    bottom with ``pad_value``. If any picture is colour ``(H, W, 3)`` the result is colour too
    (grey pictures are repeated over the three channels).
    """
    arrays = [to_unit_float(g) for g in grids]
    if not arrays:
        raise DataError("side_by_side needs at least one picture")
    for a in arrays:
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
            raise DataError(f"pictures must be (H, W) or (H, W, 3), got shape {tuple(a.shape)}")
    colour = any(a.ndim == 3 for a in arrays)
    if colour:
        arrays = [_to_rgb(a) for a in arrays]
    height = max(a.shape[0] for a in arrays)
    width = sum(a.shape[1] for a in arrays) + gap * (len(arrays) - 1)
    shape = (height, width, 3) if colour else (height, width)
    out = np.full(shape, float(pad_value))
    x = 0
    for a in arrays:
        out[: a.shape[0], x : x + a.shape[1]] = a
        x += a.shape[1] + gap
    return out
