"""Pictures of a classifier: a confusion matrix and a grid of images with captions (PNG).

Both are drawn directly at their final resolution with Pillow (text stays sharp) and written
atomically. Inputs are numpy arrays (tensors are duck-typed through ``np.asarray``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bihm_app.errors import DataError
from bihm_app.render.grid import image_stack
from bihm_app.render.png import atomic_save
from bihm_app.render.png_text import draw_text

__all__ = ["confusion_image", "save_confusion_png", "captioned_grid_image", "save_captioned_grid_png"]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _centre_text(draw: Any, box: tuple[float, float, float, float], text: str, font: Any, fill) -> None:
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    x = (box[0] + box[2] - (r - l)) / 2 - l
    y = (box[1] + box[3] - (b - t)) / 2 - t
    draw.text((x, y), text, font=font, fill=fill)


def confusion_image(matrix: Any, title: str = "", cell: int = 44) -> Image.Image:
    """A confusion matrix (C, C) of counts (rows: true class, columns: predicted) as a heat map.

    Each cell shows its count; its shade is the count as a fraction of its row (white 0 → dark
    blue 1), so the diagonal reads as per-class accuracy whatever the class sizes.
    """
    m = np.asarray(matrix, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise DataError(f"a confusion matrix must be (C, C), got shape {tuple(m.shape)}")
    C = m.shape[0]
    rows = m.sum(1, keepdims=True)
    frac = np.where(rows > 0, m / np.maximum(rows, 1), 0.0)
    margin, top = 56, 56 if title else 36
    W, H = margin + C * cell + 12, top + C * cell + 12
    img = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    small, big = _font(12), _font(14)
    if title:
        draw_text(draw, (8, 6), title, (0, 0, 0), big)  # p̃ drawn as such (render/png_text.py)
    # ASCII only: Pillow's default font has no arrows
    draw.text((margin, top - 18), "predicted", font=small, fill=(80, 80, 80))
    draw.text((4, top - 18), "true", font=small, fill=(80, 80, 80))
    for i in range(C):
        _centre_text(draw, (margin - 28, top + i * cell, margin - 4, top + (i + 1) * cell), str(i), small, (0, 0, 0))
        for j in range(C):
            f = float(frac[i, j])
            colour = tuple(int(round(255 - f * (255 - c))) for c in (25, 60, 140))
            box = (margin + j * cell, top + i * cell, margin + (j + 1) * cell - 1, top + (i + 1) * cell - 1)
            draw.rectangle(box, fill=colour, outline=(200, 200, 200))
            _centre_text(draw, box, str(int(m[i, j])), small, (255, 255, 255) if f > 0.5 else (0, 0, 0))
    return img


def save_confusion_png(matrix: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write :func:`confusion_image` as PNG (atomically); returns the path."""
    img = confusion_image(matrix, title)
    return atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))


def captioned_grid_image(
    images: Any, captions: Sequence[str], ncol: int = 8, scale: int = 3, image_shape: tuple[int, int] | None = None
) -> Image.Image:
    """Images (N, H, W) or rows (N, H·W) on a grid, each with a one-line caption below it."""
    stack = image_stack(images, image_shape)
    n, h, w = stack.shape
    if n == 0:
        raise DataError("cannot make a grid of 0 images")
    if len(captions) != n:
        raise DataError(f"{n} images but {len(captions)} captions")
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    font = _font(11)
    cw, ch, cap = w * scale + 8, h * scale + 8, 16
    img = Image.new("RGB", (ncol * cw, nrow * (ch + cap)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i in range(n):
        r, c = divmod(i, ncol)
        u8 = np.round(np.clip(stack[i], 0, 1) * 255).astype(np.uint8)
        tile = Image.fromarray(u8).resize((w * scale, h * scale), Image.Resampling.NEAREST).convert("RGB")
        x, y = c * cw + 4, r * (ch + cap) + 4
        img.paste(tile, (x, y))
        _centre_text(draw, (c * cw, y + h * scale + 2, (c + 1) * cw, y + h * scale + cap), captions[i], font, (150, 20, 20))
    return img


def save_captioned_grid_png(
    images: Any, captions: Sequence[str], path: str | os.PathLike[str], ncol: int = 8, image_shape=None
) -> Path:
    """Write :func:`captioned_grid_image` as PNG (atomically); returns the path."""
    img = captioned_grid_image(images, captions, ncol=ncol, image_shape=image_shape)
    return atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))
