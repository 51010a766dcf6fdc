"""A grid of small pictures, each with a one-line caption below it (the classify view's digits).

Each picture is drawn like :class:`~bihm_app.tui.widgets.bitmap.BitmapImage` (braille or half
blocks, ink in the widget's colour); the number of columns follows the widget's width, so the same
gallery fills 80 or 200 columns. A caption is coloured by its ``wrong`` flag (the component
classes ``digit-gallery--wrong`` and ``digit-gallery--right``), and its text says the same thing
for a terminal without colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from bihm_app.tui.widgets.bitmap import text_lines

GAP = 2  # blank columns between two pictures


@dataclass(frozen=True)
class Tile:
    """One picture of the gallery: a (H, W) grid in [0, 1] and its caption."""

    picture: np.ndarray
    caption: str
    wrong: bool = False


class DigitGallery(Widget):
    """Captioned pictures in as many columns as fit; ``mode`` switches braille / half blocks."""

    COMPONENT_CLASSES = {"digit-gallery--wrong", "digit-gallery--right"}
    DEFAULT_CSS = """
    DigitGallery { width: 1fr; height: auto; }
    DigitGallery > .digit-gallery--wrong { color: $text-error; text-style: bold; }
    DigitGallery > .digit-gallery--right { color: $text-success; }
    """

    mode: reactive[str] = reactive("braille", layout=True)

    def __init__(self, *, placeholder: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.placeholder = placeholder
        self.tiles: list[Tile] = []
        self._lines: list[list[str]] = []  # text rows of each tile's picture

    def set_tiles(self, tiles: list[Tile], placeholder: str | None = None) -> None:
        """Show these pictures (an empty list shows the placeholder)."""
        self.tiles = list(tiles)
        if placeholder is not None:
            self.placeholder = placeholder
        self._relines()

    def watch_mode(self, _old: str, _new: str) -> None:
        self._relines()

    def _relines(self) -> None:
        self._lines = [text_lines(t.picture, self.mode) for t in self.tiles]
        self.refresh(layout=True)

    # -- geometry ------------------------------------------------------------------------------
    def tile_size(self) -> tuple[int, int]:
        """(width, height) of one tile in cells: the widest picture or caption, picture rows + 1."""
        if not self.tiles:
            return 0, 0
        w = max(max((len(s) for s in lines), default=0) for lines in self._lines)
        w = max(w, max(len(t.caption) for t in self.tiles))
        return w, max(len(lines) for lines in self._lines) + 1

    def columns(self, width: int) -> int:
        """How many tiles fit side by side in ``width`` cells (at least one)."""
        w, _ = self.tile_size()
        return max(1, (width + GAP) // (w + GAP)) if w else 1

    def get_content_width(self, container, viewport) -> int:
        w, _ = self.tile_size()
        if not w:
            return len(self.placeholder)
        n = min(len(self.tiles), self.columns(container.width))
        return n * w + (n - 1) * GAP

    def get_content_height(self, container, viewport, width: int) -> int:
        w, h = self.tile_size()
        if not w:
            return 1
        rows = -(-len(self.tiles) // self.columns(width))
        return rows * h + (rows - 1)

    # -- drawing -------------------------------------------------------------------------------
    def render(self) -> Text:
        if not self.tiles:
            return Text(self.placeholder)
        w, h = self.tile_size()
        ncol = self.columns(self.content_size.width)
        wrong = self.get_component_rich_style("digit-gallery--wrong")
        right = self.get_component_rich_style("digit-gallery--right")
        out = Text(no_wrap=True, end="")
        for r in range(0, len(self.tiles), ncol):
            row = list(range(r, min(r + ncol, len(self.tiles))))
            if r:
                out.append("\n\n")
            for line in range(h - 1):
                if line:
                    out.append("\n")
                out.append((" " * GAP).join(_cell(self._lines[i], line, w) for i in row))
            out.append("\n")
            for j, i in enumerate(row):
                if j:
                    out.append(" " * GAP)
                t = self.tiles[i]
                out.append(t.caption.center(w), style=wrong if t.wrong else right)
        return out


def _cell(lines: list[str], line: int, width: int) -> str:
    return (lines[line] if line < len(lines) else "").ljust(width)
