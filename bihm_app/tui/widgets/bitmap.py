"""Pictures drawn with text: braille (2×4 pixels per cell) or half blocks (1×2).

A stack of pictures is laid out in rows that fit the widget's width (at most ``ncol`` per row,
fewer on a narrow screen: the grid wraps instead of running off the right edge), each picture
dithered to on/off pixels (:func:`~bihm_app.render.terminal.ordered_dither`), so it needs no
colour: the ink is the widget's CSS ``color``, which keeps it readable in light and dark themes,
under NO_COLOR, in tmux and in SVG snapshots. Dithering, not a 0.5 threshold, keeps grey values
visible: the Bernoulli means of a sparse data set (adult: 11 % ones) are mostly below 0.5, and
a threshold drew them as an empty grid.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from bihm_app.render.grid import make_grid
from bihm_app.render.terminal import tile_columns, tiled_lines

MODES = ("braille", "halfblock")
GAP = 2  # blank pixels between pictures (as in the saved PNG grid)


def text_lines(grid: np.ndarray, mode: str = "braille", width: int = 10**6) -> list[str]:
    """One string per text row for one (H, W) picture or a stack (N, H, W), ``width`` cells wide at most."""
    return tiled_lines(np.asarray(grid, dtype=float), mode, width, gap=GAP)


class BitmapImage(Widget):
    """Shows pictures as text; ``mode`` switches braille / half blocks."""

    DEFAULT_CSS = """
    BitmapImage { width: 1fr; height: auto; }
    """

    mode: reactive[str] = reactive("braille", layout=True)

    def __init__(self, *, mode: str = "braille", placeholder: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._images: np.ndarray | None = None  # (N, H, W)
        self.ncol = 1
        self._cache: tuple[tuple, list[str]] | None = None
        self.placeholder = placeholder
        self.set_reactive(BitmapImage.mode, mode)

    @property
    def images(self) -> np.ndarray | None:
        """The pictures shown, ``(N, H, W)`` in [0, 1]."""
        return self._images

    @property
    def grid(self) -> np.ndarray | None:
        """The pictures as one grid picture of ``ncol`` columns (what Save PNG writes)."""
        if self._images is None:
            return None
        if len(self._images) == 1:
            return self._images[0]
        return make_grid(self._images, ncol=self.ncol, pad=GAP, pad_value=0.0)

    def set_grid(self, grid: np.ndarray | None) -> None:
        """Show one picture (None: the placeholder)."""
        self.set_images(None if grid is None else np.asarray(grid, dtype=float)[None], ncol=1)

    def set_images(self, images: np.ndarray | None, ncol: int | None = None) -> None:
        """Show a stack of pictures ``(N, H, W)``, at most ``ncol`` per row (None: the placeholder)."""
        self._images = None if images is None else np.asarray(images, dtype=float)
        self.ncol = max(1, ncol or (1 if images is None else len(images)))
        self._cache = None
        self.refresh(layout=True)

    def columns(self, width: int) -> int:
        """Pictures per row at ``width`` cells."""
        if self._images is None:
            return 0
        return tile_columns(len(self._images), self._images.shape[2], self.mode, width, self.ncol, GAP)

    def lines(self, width: int) -> list[str]:
        """The text rows at ``width`` cells (cached per width and mode)."""
        if self._images is None:
            return []
        key = (width, self.mode)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, tiled_lines(self._images, self.mode, width, self.ncol, GAP))
        return self._cache[1]

    def get_content_width(self, container, viewport) -> int:
        return container.width

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self.lines(width)))

    def render(self) -> Text:
        lines = self.lines(self.content_size.width)
        if not lines:
            return Text(self.placeholder)
        return Text("\n".join(lines), no_wrap=True, overflow="crop")
