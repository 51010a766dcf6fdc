"""Pictures drawn with characters: Rich renderables that fit the terminal.

Two encodings, both vectorised with numpy (one string per row) and deterministic, so they are
good for snapshot tests and work in tmux, over SSH and with ``NO_COLOR``:

* half-block: one cell holds 1x2 pixels (``" ▀▄█"``), so pixels stay square;
* braille: one cell holds 2x4 pixels (U+2800 plus one bit per dot), half the width again.

Grey pictures use foreground/background colours in half-block mode when the console has colour,
and a threshold otherwise. :func:`pixel_image` is the optional real-pixel path (Sixel / Kitty) via
the ``textual_image`` package when it is installed.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from bihm_app.errors import DataError
from bihm_app.render.grid import to_unit_float

__all__ = [
    "BitmapImage",
    "bitmap_lines",
    "ordered_dither",
    "tiled_lines",
    "tile_columns",
    "halfblock_lines",
    "braille_lines",
    "braille_codes",
    "downsample",
    "fit_plan",
    "pixel_image",
]

Mode = Literal["halfblock", "braille", "auto"]

HALF_BLOCKS = np.array([" ", "▀", "▄", "█"])  # index: top + 2 * bottom
BRAILLE = np.array([chr(0x2800 + i) for i in range(256)])
# (row, column) of each dot inside a 4x2 braille cell -> its bit (Unicode braille numbering).
BRAILLE_BITS = (
    (0, 0, 0x01), (1, 0, 0x02), (2, 0, 0x04), (0, 1, 0x08),
    (1, 1, 0x10), (2, 1, 0x20), (3, 0, 0x40), (3, 1, 0x80),
)  # fmt: skip
CELL = {"halfblock": (1, 2), "braille": (2, 4)}  # pixels per cell: (width, height)
# 4x4 Bayer matrix: the thresholds of ordered dithering, (rank + 0.5) / 16.
BAYER4 = (np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) + 0.5) / 16
_LUMA = np.array([0.299, 0.587, 0.114])


def _picture(grid: Any) -> np.ndarray:
    """Float picture in [0, 1], ``(H, W)`` or ``(H, W, 3)``."""
    a = to_unit_float(grid)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise DataError(f"a picture must be (H, W) or (H, W, 3), got shape {tuple(a.shape)}")
    return a


def _luminance(a: np.ndarray) -> np.ndarray:
    return a @ _LUMA if a.ndim == 3 else a


def _pad(a: np.ndarray, mult_h: int, mult_w: int, value: float = 0.0) -> np.ndarray:
    h, w = a.shape[:2]
    ph, pw = (-h) % mult_h, (-w) % mult_w
    if ph == 0 and pw == 0:
        return a
    widths = ((0, ph), (0, pw)) + ((0, 0),) * (a.ndim - 2)
    return np.pad(a, widths, constant_values=value)


def halfblock_lines(on: np.ndarray) -> list[str]:
    """Encode a boolean bitmap ``(H, W)`` as ceil(H/2) lines of W half-block characters."""
    b = _pad(np.asarray(on, dtype=bool), 2, 1).astype(np.intp)
    codes = b[0::2] + 2 * b[1::2]  # (H/2, W)
    return ["".join(row) for row in HALF_BLOCKS[codes]]


def braille_codes(on: np.ndarray) -> np.ndarray:
    """Dot bits (0..255) of each braille cell of a boolean bitmap: ``(ceil(H/4), ceil(W/2))``."""
    b = _pad(np.asarray(on, dtype=bool), 4, 2).astype(np.intp)
    cells = b.reshape(b.shape[0] // 4, 4, b.shape[1] // 2, 2)  # (rows, dy, cols, dx)
    codes = np.zeros((cells.shape[0], cells.shape[2]), dtype=np.intp)
    for dy, dx, bit in BRAILLE_BITS:
        codes |= cells[:, dy, :, dx] * bit
    return codes


def braille_lines(on: np.ndarray) -> list[str]:
    """Encode a boolean bitmap ``(H, W)`` as ceil(H/4) lines of ceil(W/2) braille characters."""
    return ["".join(row) for row in BRAILLE[braille_codes(on)]]


def bitmap_lines(grid: Any, mode: str = "halfblock", threshold: float = 0.5) -> list[str]:
    """Plain-text lines of a picture: pixels with value >= ``threshold`` are drawn.

    ``mode`` is "halfblock" or "braille" ("auto" means half-block here: there is no width to
    fit). Colour pictures are thresholded on their luminance. No downsampling is done.
    """
    on = _luminance(_picture(grid)) >= threshold
    if mode in ("halfblock", "auto"):
        return halfblock_lines(on)
    if mode == "braille":
        return braille_lines(on)
    raise DataError(f"unknown image mode {mode!r} (choose halfblock, braille or auto)")


def ordered_dither(picture: Any) -> np.ndarray:
    """Pictures in [0, 1] -> on/off pixels by ordered (4x4 Bayer) dithering.

    A pixel of value v is on where v exceeds its position's threshold, so in any 4x4 block about
    a fraction v of the pixels is on: 0 stays off, 1 stays on, and grey values (Bernoulli means
    of a sparse data set, say 0.1-0.4) show as sparse dots instead of vanishing under a 0.5
    threshold. Deterministic; a stack ``(N, H, W)`` is dithered image by image from each
    image's own corner, so equal images look equal wherever they are placed.
    """
    a = to_unit_float(picture)
    if a.ndim == 3 and a.shape[2] == 3:
        a = _luminance(a)
    h, w = a.shape[-2:]
    reps = (math.ceil(h / 4), math.ceil(w / 4))
    return a > np.tile(BAYER4, reps)[:h, :w]


def tile_columns(n: int, image_width: int, mode: str, max_width: int, ncol: int | None = None, gap: int = 2) -> int:
    """How many images of ``image_width`` pixels go in a row of at most ``max_width`` cells
    (at most ``ncol``, at least 1)."""
    cw = CELL[mode][0]
    slot_px = math.ceil((image_width + gap) / cw) * cw  # an image and its gap, on cell boundaries
    k = max(1, min(n, ncol or n))
    while k > 1 and math.ceil(((k - 1) * slot_px + image_width) / cw) > max_width:
        k -= 1
    return k


def tiled_lines(images: Any, mode: str = "braille", max_width: int = 80, ncol: int | None = None,
                gap: int = 2) -> list[str]:
    """Text lines of a stack of pictures ``(N, H, W)`` laid out in rows that fit ``max_width``
    cells (at most ``ncol`` per row), ``gap`` blank pixels apart, each picture dithered
    (:func:`ordered_dither`) and starting on a cell boundary."""
    if mode not in CELL:
        raise DataError(f"unknown image mode {mode!r} (choose halfblock or braille)")
    stack = to_unit_float(images)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise DataError(f"pictures must be (N, H, W), got shape {tuple(stack.shape)}")
    n, h, w = stack.shape
    cw, ch = CELL[mode]
    cols = tile_columns(n, w, mode, max_width, ncol, gap)
    rows = math.ceil(n / cols)
    slot_w = math.ceil((w + gap) / cw) * cw
    slot_h = math.ceil((h + gap) / ch) * ch
    canvas = np.zeros(((rows - 1) * slot_h + h, (cols - 1) * slot_w + w), dtype=bool)
    for i, on in enumerate(ordered_dither(stack)):
        r, c = divmod(i, cols)
        canvas[r * slot_h : r * slot_h + h, c * slot_w : c * slot_w + w] = on
    return halfblock_lines(canvas) if mode == "halfblock" else braille_lines(canvas)


def downsample(grid: Any, factor: int) -> np.ndarray:
    """Block-average a picture by an integer ``factor``; edge blocks average their real pixels."""
    a = _picture(grid)
    if factor <= 1:
        return a
    h, w = a.shape[:2]
    padded = _pad(a, factor, factor, value=np.nan)
    hb, wb = padded.shape[0] // factor, padded.shape[1] // factor
    blocks = padded.reshape((hb, factor, wb, factor) + padded.shape[2:])
    return np.nanmean(blocks, axis=(1, 3))


def fit_plan(
    height: int, width: int, mode: str, max_width: int, max_height: int | None = None
) -> tuple[str, int]:
    """Choose (encoding, downsampling factor) so a ``height`` x ``width`` picture fits.

    "halfblock"/"braille" keep their encoding and downsample as little as needed; "auto" takes
    half-block if it fits at full size, else braille, downsampled if even braille is too wide.
    """
    if mode not in ("halfblock", "braille", "auto"):
        raise DataError(f"unknown image mode {mode!r} (choose halfblock, braille or auto)")
    max_width = max(1, int(max_width))
    max_height = None if max_height is None else max(1, int(max_height))

    def fits(m: str, f: int) -> bool:
        cw, ch = CELL[m]
        cols = math.ceil(math.ceil(width / f) / cw)
        rows = math.ceil(math.ceil(height / f) / ch)
        return cols <= max_width and (max_height is None or rows <= max_height)

    def smallest_factor(m: str) -> int:
        f = max(1, math.ceil(width / (CELL[m][0] * max_width)))
        while not fits(m, f) and f < max(width, height):
            f += 1
        return f

    if mode == "auto":
        if fits("halfblock", 1):
            return "halfblock", 1
        mode = "braille"
    return mode, smallest_factor(mode)


def _is_binary(a: np.ndarray) -> bool:
    return bool(np.all((a == 0.0) | (a == 1.0)))


class BitmapImage:
    """A Rich renderable that draws a picture with characters, fitted to the available width.

    ``mode``: "halfblock" (1x2 pixels per cell, square pixels), "braille" (2x4 pixels per cell)
    or "auto" (half-block when it fits, else braille, else block-averaged braille). The width is
    the smaller of the console's and ``max_width``; a fixed console height is honoured too.
    Grey or colour pictures in half-block mode are drawn with colours when the console has
    them, else thresholded at ``threshold``.
    """

    def __init__(
        self,
        grid: Any,
        mode: Mode = "auto",
        max_width: int | None = None,
        threshold: float = 0.5,
        title: str | None = None,
    ) -> None:
        if mode not in ("halfblock", "braille", "auto"):
            raise DataError(f"unknown image mode {mode!r} (choose halfblock, braille or auto)")
        self.picture = _picture(grid)
        self.mode = mode
        self.max_width = max_width
        self.threshold = threshold
        self.title = title

    def _limits(self, options: ConsoleOptions) -> tuple[int, int | None]:
        width = options.max_width
        if self.max_width is not None:
            width = min(width, self.max_width)
        height = options.height
        if height is not None and self.title:
            height = max(1, height - 1)
        return max(1, width), height

    def plan(self, max_width: int, max_height: int | None = None) -> tuple[str, int]:
        """(encoding, factor) this image uses within ``max_width`` x ``max_height`` cells."""
        h, w = self.picture.shape[:2]
        return fit_plan(h, w, self.mode, max_width, max_height)

    def _cells_width(self, mode: str, factor: int) -> int:
        return math.ceil(math.ceil(self.picture.shape[1] / factor) / CELL[mode][0])

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        mode, factor = self.plan(*self._limits(options))
        width = self._cells_width(mode, factor)
        return Measurement(width, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        mode, factor = self.plan(*self._limits(options))
        pic = downsample(self.picture, factor)
        width = self._cells_width(mode, factor)
        if self.title:
            title = Text(self.title, style="bold", no_wrap=True)
            title.truncate(width, overflow="ellipsis")
            title.align("center", width)
            yield title
        has_colour = console.color_system is not None and not console.no_color
        if mode == "halfblock" and has_colour and not _is_binary(pic):
            yield from self._colour_halfblocks(pic)
            return
        on = _luminance(pic) >= self.threshold
        lines = halfblock_lines(on) if mode == "halfblock" else braille_lines(on)
        for line in lines:
            yield Segment(line)
            yield Segment.line()

    @staticmethod
    def _colour_halfblocks(pic: np.ndarray) -> RenderResult:
        """"▀" cells with the top pixel as foreground and the bottom one as background colour."""
        rgb = pic if pic.ndim == 3 else np.repeat(pic[:, :, None], 3, axis=2)
        levels = np.round(rgb * 255).astype(np.int64)
        packed = (levels[..., 0] << 16) | (levels[..., 1] << 8) | levels[..., 2]  # (H, W)
        if packed.shape[0] % 2:
            packed = np.vstack([packed, np.full((1, packed.shape[1]), -1, dtype=np.int64)])
        styles: dict[tuple[int, int], Style] = {}

        def style(top: int, bottom: int) -> Style:
            key = (top, bottom)
            if key not in styles:
                fg = _unpack(top)
                bg = None if bottom < 0 else _unpack(bottom)
                styles[key] = Style(color=fg, bgcolor=bg)
            return styles[key]

        for top, bottom in zip(packed[0::2], packed[1::2]):
            # Run-length encode equal (top, bottom) pairs: one segment per run.
            change = np.flatnonzero((top[1:] != top[:-1]) | (bottom[1:] != bottom[:-1])) + 1
            starts = np.concatenate([[0], change])
            ends = np.concatenate([change, [top.size]])
            for s, e in zip(starts.tolist(), ends.tolist()):
                yield Segment("▀" * (e - s), style(int(top[s]), int(bottom[s])))
            yield Segment.line()


def _unpack(rgb: int) -> Color:
    return Color.from_rgb(rgb >> 16, (rgb >> 8) & 255, rgb & 255)


def pixel_image(grid: Any, scale: int = 1, width: int | None = None) -> Any | None:
    """A real-pixel renderable (Sixel / Kitty / half-cell) if ``textual_image`` is installed.

    Returns a ``textual_image.renderable.Image`` of the picture upscaled ``scale`` times with
    NEAREST (so edges stay sharp when the terminal scales it), or ``None`` when the package is
    missing or cannot start; callers then fall back to :class:`BitmapImage`.
    """
    from bihm_app.render.png import to_pil

    try:
        from textual_image.renderable import Image as PixelImage
    except Exception:  # noqa: BLE001 - not installed, or its terminal probe failed at import
        return None
    return PixelImage(to_pil(grid, scale), width=width)
