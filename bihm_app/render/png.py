"""Pictures to files: PNG and animated GIF with Pillow, written atomically.

A picture is a float array in [0, 1], ``(H, W)`` grey or ``(H, W, 3)`` colour (see
:mod:`bihm_app.render.grid`). Pixels are upscaled with NEAREST so binary images stay sharp.
Files are written to a temporary file in the target folder and moved into place with
``os.replace``, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bihm_app.errors import BihmError, DataError
from bihm_app.file_modes import default_file_mode
from bihm_app.render.grid import to_unit_float

__all__ = ["to_pil", "save_png", "save_gif", "colorize", "atomic_save"]


def _check_picture(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise DataError(f"a picture must be (H, W) or (H, W, 3), got shape {tuple(a.shape)}")
    return a


def to_pil(grid: Any, scale: int = 1) -> Image.Image:
    """Convert a picture to a Pillow image ("L" for grey, "RGB" for colour), scaled NEAREST."""
    a = _check_picture(to_unit_float(grid))
    if scale < 1:
        raise DataError(f"image scale must be >= 1, got {scale}")
    u8 = np.round(a * 255.0).astype(np.uint8)
    img = Image.fromarray(u8)  # "L" for (H, W), "RGB" for (H, W, 3) uint8
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


def atomic_save(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Run ``write(tmp_path)`` and move the result to ``path`` atomically.

    The temporary file sits in the target folder (so ``os.replace`` is a rename on one file
    system) and is removed if writing fails. Missing parent folders are created. The file gets the
    mode ``open()`` would give it (0666 minus the umask), like every other file the tool writes.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise BihmError(f"cannot write {target}: {exc.strerror or exc}") from exc
    try:
        os.fchmod(fd, default_file_mode())  # mkstemp creates 0600; a picture gets what open() gives
    finally:
        os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise BihmError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def save_png(grid: Any, path: str | os.PathLike[str], scale: int = 4) -> Path:
    """Write a picture as PNG, each pixel a ``scale`` x ``scale`` block; returns the path."""
    img = to_pil(grid, scale)
    return atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))


def save_gif(
    frames: Sequence[Any],
    path: str | os.PathLike[str],
    scale: int = 4,
    duration_ms: int = 100,
    loop: int = 0,
) -> Path:
    """Write pictures of equal size as an animated GIF (``loop=0``: repeat forever).

    Grey and colour frames may be mixed (all become RGB then). Pillow merges identical
    consecutive frames into one longer frame, so a reader may see fewer frames than given.
    """
    arrays = [_check_picture(to_unit_float(f)) for f in frames]
    if not arrays:
        raise DataError(f"cannot write {path}: an animation needs at least one frame")
    shapes = {a.shape[:2] for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"cannot write {path}: frames differ in size {sorted(shapes)}")
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
    images = [to_pil(a, scale) for a in arrays]
    if images[0].mode == "RGB":
        # One shared adaptive palette keeps colours stable from frame to frame.
        strip = np.concatenate([np.asarray(im) for im in images], axis=0)
        palette = Image.fromarray(strip).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]

    def write(tmp: str) -> None:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(duration_ms),
            loop=int(loop),
        )

    return atomic_save(path, write)


def colorize(
    grid: Any, mask: Any, color: tuple[int, int, int] = (200, 40, 40)
) -> np.ndarray:
    """Highlight the pixels where ``mask`` is true; returns an ``(H, W, 3)`` float picture.

    Unmasked pixels stay grey. A masked pixel of value v is drawn in ``color`` (0..255 RGB),
    from a dark shade (v = 0) to the full colour (v = 1), so completed pixels of an inpainting
    stay readable. To show the hidden region as a solid patch, set those pixels to 1 first.
    """
    g = to_unit_float(grid)
    if g.ndim == 3:  # already colour: highlight on its luminance
        g = g @ np.array([0.299, 0.587, 0.114])
    m = as_bool_mask(mask)
    if m.shape != g.shape:
        raise DataError(f"mask shape {tuple(m.shape)} does not match picture {tuple(g.shape)}")
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    c = np.asarray(color, dtype=np.float64) / 255.0
    shade = (0.25 + 0.75 * g[m])[:, None] * c[None, :]
    rgb[m] = shade
    return rgb


def as_bool_mask(mask: Any) -> np.ndarray:
    """A boolean mask from bool / 0-1 numbers / tensors (values >= 0.5 are true)."""
    return to_unit_float(mask) >= 0.5
