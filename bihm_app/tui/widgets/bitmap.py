"""A monochrome picture drawn with text: braille (2×4 pixels per cell) or half blocks (1×2).

The picture is a float grid in [0, 1] thresholded to on/off, so it needs no colour: the ink is the
widget's CSS ``color``, which keeps it readable in light and dark themes, under NO_COLOR, in tmux
and in SVG snapshots.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from bihm_app.render.terminal import bitmap_lines

MODES = ("braille", "halfblock")


def text_lines(grid: np.ndarray, mode: str = "braille", threshold: float = 0.5) -> list[str]:
    """One string per text row for a (H, W) picture; pixels >= threshold are ink."""
    return list(bitmap_lines(grid, mode=mode, threshold=threshold))


class BitmapImage(Widget):
    """Shows a picture grid as text; ``mode`` switches braille / half blocks."""

    DEFAULT_CSS = """
    BitmapImage { width: auto; height: auto; }
    """

    mode: reactive[str] = reactive("braille", layout=True)

    def __init__(self, *, mode: str = "braille", placeholder: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self._grid: np.ndarray | None = None
        self._lines: list[str] = []
        self.placeholder = placeholder
        self.set_reactive(BitmapImage.mode, mode)

    @property
    def grid(self) -> np.ndarray | None:
        return self._grid

    def set_grid(self, grid: np.ndarray | None) -> None:
        """Show a new picture (None: the placeholder)."""
        self._grid = None if grid is None else np.asarray(grid, dtype=float)
        self._relines()

    def watch_mode(self, _old: str, _new: str) -> None:
        self._relines()

    def _relines(self) -> None:
        self._lines = [] if self._grid is None else text_lines(self._grid, self.mode)
        self.refresh(layout=True)

    def get_content_width(self, container, viewport) -> int:
        return max((len(s) for s in self._lines), default=len(self.placeholder))

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self._lines))

    def render(self) -> Text:
        if not self._lines:
            return Text(self.placeholder)
        return Text("\n".join(self._lines), no_wrap=True)
