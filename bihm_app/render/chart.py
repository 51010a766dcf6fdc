"""Line charts of metric curves, for the terminal (Rich, braille dots) and for PNG files (Pillow).

Typical use: training curves (log p, log p̃*, 2 log Z per epoch) of one or several runs overlaid,
with optional ± standard-error bands. Every series gets a colour *and* a line style and marker,
so charts stay readable with ``NO_COLOR`` and in grey print. NaN values leave gaps; a constant
series or a single point is drawn in a padded range instead of failing.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.text import Text

from bihm_app.errors import DataError
from bihm_app.render.grid import as_numpy
from bihm_app.render.png import atomic_save
from bihm_app.render.png_text import draw_text as _draw_text
from bihm_app.render.png_text import text_height as _text_height
from bihm_app.render.png_text import text_width as _text_width
from bihm_app.render.terminal import BRAILLE, braille_codes

__all__ = ["LineChart", "TickAxis", "even_ticks", "save_chart_png", "sparkline", "nice_ticks", "format_ticks"]

SeriesMap = Mapping[str, tuple[Sequence[float], Sequence[float]]]
BandMap = Mapping[str, Sequence[float]]

TERM_COLOURS = ("bright_cyan", "bright_magenta", "bright_yellow", "bright_green", "bright_red",
                "bright_blue", "bright_white")  # fmt: skip
PNG_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
               (140, 86, 75), (23, 190, 207))  # fmt: skip
MARKERS = ("●", "■", "▲", "◆", "○", "□", "△")
NICE_STEPS = (1, 2, 5)  # tick steps are these times a power of ten
PNG_MARKERS = ("circle", "square", "triangle", "diamond", "ring", "box", "tri_open")
# Line styles as (pixels on, pixels off) along the curve, and the legend character for each.
DASHES = ((1, 0), (4, 3), (1, 2))
DASH_CHARS = ("─", "╌", "┈")
SPARK_CHARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class _Series:
    """One curve after validation: float arrays (NaN = gap) and its drawing style."""

    name: str
    x: np.ndarray
    y: np.ndarray
    se: np.ndarray | None
    index: int

    @property
    def marker(self) -> str:
        return MARKERS[self.index % len(MARKERS)]

    @property
    def dash(self) -> tuple[int, int]:
        return DASHES[self.index % len(DASHES)]

    @property
    def dash_char(self) -> str:
        return DASH_CHARS[self.index % len(DASH_CHARS)]

    @property
    def colour(self) -> str:
        return TERM_COLOURS[self.index % len(TERM_COLOURS)]

    @property
    def rgb(self) -> tuple[int, int, int]:
        return PNG_COLOURS[self.index % len(PNG_COLOURS)]


def _floats(values: Any, what: str) -> np.ndarray:
    try:
        a = np.asarray(as_numpy(values), dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: values are not numbers ({exc})") from exc
    return np.where(np.isfinite(a), a, np.nan)  # inf is drawn as a gap too


def _prepare(series: SeriesMap, bands: BandMap | None) -> list[_Series]:
    """Validate the user's mappings into :class:`_Series` (same lengths, known band names)."""
    bands = dict(bands or {})
    out = []
    for i, (name, pair) in enumerate(series.items()):
        try:
            xs, ys = pair
        except (TypeError, ValueError) as exc:
            raise DataError(f"series {name!r}: expected a pair (x values, y values)") from exc
        x, y = _floats(xs, f"series {name!r} x"), _floats(ys, f"series {name!r} y")
        if x.size != y.size:
            raise DataError(f"series {name!r}: {x.size} x values but {y.size} y values")
        se = None
        if name in bands:
            se = np.abs(_floats(bands.pop(name), f"band {name!r}"))
            if se.size != y.size:
                raise DataError(f"band {name!r}: {se.size} values for {y.size} points")
        out.append(_Series(str(name), x, y, se, i))
    if bands:
        raise DataError(f"bands for unknown series: {', '.join(map(repr, bands))}")
    return out


def _padded_range(values: list[np.ndarray], rel_pad: float = 0.0) -> tuple[float, float] | None:
    """(lo, hi) over the finite values, widened so that lo < hi; None when nothing is finite."""
    finite = [v[np.isfinite(v)] for v in values]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    lo = float(min(v.min() for v in finite))
    hi = float(max(v.max() for v in finite))
    if hi == lo:
        pad = abs(lo) * 0.05 if lo != 0 else 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * rel_pad
    return lo - pad, hi + pad


def _ranges(
    items: list[_Series], x_pad: float = 0.0, y_pad: float = 0.03
) -> tuple[tuple[float, float], tuple[float, float], bool]:
    """x range, y range (bands included, widened by the relative pads) and whether there is
    anything to draw."""
    ys: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    for s in items:
        ok = np.isfinite(s.x) & np.isfinite(s.y)
        xs.append(s.x[ok])
        ys.append(s.y[ok])
        if s.se is not None:
            good = ok & np.isfinite(s.se)
            ys += [s.y[good] - s.se[good], s.y[good] + s.se[good]]
    xr = _padded_range(xs, rel_pad=x_pad)
    yr = _padded_range(ys, rel_pad=y_pad)
    if xr is None or yr is None:
        return (0.0, 1.0), (0.0, 1.0), False
    if all(np.all(v == np.round(v)) for v in xs) and xr[1] - xr[0] < 1:
        xr = (xr[0] - 0.5, xr[1] + 0.5)  # a single epoch: keep whole-number ticks sensible
    return xr, yr, True


def _integer_x(items: list[_Series]) -> bool:
    """True when every finite x value is a whole number (epochs): x ticks then step by >= 1."""
    return all(np.all(s.x[np.isfinite(s.x)] == np.round(s.x[np.isfinite(s.x)])) for s in items)


def _nice_steps(raw: float):
    """Nice steps (1, 2, 5 × 10^k) from the first one >= ``raw`` upwards."""
    k = math.floor(math.log10(raw)) if raw > 0 and math.isfinite(raw) else 0
    while True:
        for m in NICE_STEPS:
            step = m * 10.0**k
            if step >= raw * (1 - 1e-9):
                yield step
        k += 1


def nice_ticks(
    lo: float, hi: float, target: int = 5, integer: bool = False
) -> tuple[np.ndarray, float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi], and the step."""
    span = hi - lo
    if not math.isfinite(span) or span <= 0:
        return np.array([lo]), 1.0
    step = next(_nice_steps(span / max(1, target)))
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    ticks[np.abs(ticks) < step * 1e-9] = 0.0  # avoid "-0"
    return ticks, step


@dataclass(frozen=True)
class TickAxis:
    """A y axis whose ticks are nice numbers *and* sit on evenly spaced text rows.

    Row ``r`` (0 = top) stands for the value ``top - r * unit``; ``unit`` is ``step / g`` for a
    whole number ``g``, so the multiples of ``step`` fall exactly every ``g`` rows.
    """

    top: float
    unit: float
    step: float
    n_rows: int

    @property
    def bottom(self) -> float:
        return self.top - (self.n_rows - 1) * self.unit

    @property
    def ticks(self) -> np.ndarray:
        """Tick values (multiples of ``step`` inside the axis), from the top row down."""
        first = math.floor(self.top / self.step + 1e-9) * self.step
        n = int(math.floor((first - self.bottom) / self.step + 1e-9)) + 1
        t = first - self.step * np.arange(max(0, n))
        t[np.abs(t) < self.step * 1e-9] = 0.0
        return t

    @property
    def rows(self) -> list[int]:
        """The text row of each tick in :attr:`ticks`."""
        return [int(round((self.top - t) / self.unit)) for t in self.ticks]


def even_ticks(lo: float, hi: float, rows: int) -> TickAxis:
    """The y axis of a chart ``rows`` text rows high showing [lo, hi]: ticks 1, 2 or 5 × 10^k
    apart on rows equally far apart (2 rows at least, 3 in taller charts), with the finest value
    per row that lets the data fit; the data range is centred in the rows."""
    rows = max(2, int(rows))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        pad = abs(lo) * 0.05 if lo != 0 else 1.0
        lo, hi = lo - pad, hi + pad
    span = hi - lo
    gap = 2 if rows < 12 else 3
    gaps = range(gap, (rows - 1) // 2 + 1) if (rows - 1) // 2 >= gap else range(1, max(2, rows))
    found: list[tuple[int, TickAxis]] = []
    for step in _nice_steps(span / (rows - 1)):
        if found and step / max(gaps) > min(a.unit for _, a in found):
            break  # every finer unit has been tried
        if step > 1e3 * max(span, abs(lo), abs(hi)):
            break  # none will fit (two rows, data on both sides of 0: the rows would be -u and 0, or 0 and u)
        for g in gaps:
            unit = step / g
            if (rows - 1) * unit < span * (1 - 1e-9):
                continue
            slack = (rows - 1) * unit - span
            bottom = math.floor((lo - slack / 2) / unit + 1e-9) * unit
            if bottom + (rows - 1) * unit < hi - 1e-9 * max(1.0, abs(hi)):
                bottom += unit  # rounding down pushed the top below the data: one row up
            if bottom > lo + 1e-9 * max(1.0, abs(lo)) or bottom + (rows - 1) * unit < hi - 1e-9 * max(1.0, abs(hi)):
                continue
            found.append((g, TickAxis(bottom + (rows - 1) * unit, unit, step, rows)))
    if not found:  # rows that are not multiples of a nice step: the data's own range, ticks where they fall
        step = next(_nice_steps(span))
        return TickAxis(hi, span / (rows - 1), step, rows)
    labelled = [a for _, a in found if len(a.ticks) >= 2] or [a for _, a in found]  # two labels if at all possible
    finest = min(a.unit for a in labelled)
    # Within 10 % of the finest resolution, prefer denser ticks.
    return min((a for a in labelled if a.unit <= finest * 1.1), key=lambda a: (a.step / a.unit, a.unit))


def format_ticks(ticks: np.ndarray, step: float) -> list[str]:
    """Labels with just enough decimals for ``step``; 3 significant digits for extreme values."""
    big = np.max(np.abs(ticks)) if ticks.size else 0.0
    if big >= 1e6 or (0 < big < 1e-3):
        return [f"{t:.3g}" for t in ticks]
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    return [f"{t:.{decimals}f}" for t in ticks]


def _polyline_pixels(
    px: np.ndarray, py: np.ndarray, dash: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (rows, cols) of a polyline through (px, py); NaN points break it into pieces.

    Each segment is sampled at least once per pixel; the dash pattern runs along the sample
    index, which follows the arc length to within a pixel. Isolated points become one pixel.
    """
    finite = np.isfinite(px) & np.isfinite(py)
    seg = np.flatnonzero(finite[:-1] & finite[1:])
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if seg.size:
        x0, y0, x1, y1 = px[seg], py[seg], px[seg + 1], py[seg + 1]
        n = np.ceil(np.maximum(np.abs(x1 - x0), np.abs(y1 - y0))).astype(np.int64) + 1
        which = np.repeat(np.arange(seg.size), n)
        start = np.repeat(np.cumsum(n) - n, n)
        k = np.arange(which.size) - start
        t = k / np.maximum(np.repeat(n - 1, n), 1)
        xs = x0[which] + t * (x1 - x0)[which]
        ys = y0[which] + t * (y1 - y0)[which]
        on, off = dash
        keep = (np.arange(xs.size) % (on + off)) < on
        cols.append(np.round(xs[keep]).astype(np.int64))
        rows.append(np.round(ys[keep]).astype(np.int64))
    prev = np.concatenate([[False], finite[:-1]])
    nxt = np.concatenate([finite[1:], [False]])
    lone = finite & ~prev & ~nxt
    if lone.any():
        cols.append(np.round(px[lone]).astype(np.int64))
        rows.append(np.round(py[lone]).astype(np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)


def _marker_points(s: _Series, max_markers: int, n_series: int) -> np.ndarray:
    """Indices of the data points that get a marker: all if few, else evenly spread and
    staggered between series so markers of overlaid curves do not sit on each other."""
    ok = np.flatnonzero(np.isfinite(s.x) & np.isfinite(s.y))
    if ok.size <= max_markers:
        return ok
    step = (ok.size - 1) / max(1, max_markers - 1)
    offset = step * (s.index % max(1, n_series)) / max(1, n_series)
    pos = np.clip(np.round(np.arange(max_markers) * step + offset), 0, ok.size - 1).astype(int)
    return ok[np.unique(pos)]


def _wrap_entries(entries: list[Text], width: int, gap: int = 3) -> list[Text]:
    """Greedy wrapping of legend entries into lines of at most ``width`` cells."""
    lines: list[Text] = []
    line = Text()
    for entry in entries:
        if line.cell_len and line.cell_len + gap + entry.cell_len > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append(" " * gap)
        line.append_text(entry)
    if line.cell_len:
        lines.append(line)
    return lines


class LineChart:
    """A Rich renderable: overlaid line charts drawn with braille dots.

    ``series`` maps a name to ``(x values, y values)``; ``bands`` maps a series name to its
    standard errors, drawn dimmer as the curves y ± SE (pass 2·SE for ± 2 SE bands and say so in
    ``band_label``). ``width`` defaults to the available width; ``height`` is the total number of
    lines (title, axes and legend included), and a console that fixes the height (a Textual
    widget) overrides it.

    Layout, top to bottom: the title, the y label, the plot, the x axis, the legend. The legend
    never overlaps the plot; every series has its own marker and line style (so charts read
    without colour), and series with few points get a marker on every point. Y ticks are
    1, 2 or 5 × 10^k apart and sit on evenly spaced rows. ``colour=False`` draws every curve in the
    terminal's text colour (a monochrome terminal turns colours into greys, some of them nearly the
    background's): the markers and line styles tell the curves apart.
    """

    def __init__(
        self,
        series: SeriesMap,
        width: int | None = None,
        height: int = 16,
        title: str = "",
        x_label: str = "epoch",
        y_label: str = "",
        bands: BandMap | None = None,
        legend: bool = True,
        band_label: str = "±SE",
        empty: str = "(no data)",
        colour: bool = True,
    ) -> None:
        self.items = _prepare(series, bands)
        self.width = width
        self.height = height
        self.title = title
        self.x_label = x_label
        self.y_label = y_label
        self.show_legend = legend
        self.band_label = band_label
        self.empty = empty
        self.colour = colour  # False: the terminal's own text colour for every curve (NO_COLOR)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = options.max_width if self.width is None else min(self.width, options.max_width)
        return Measurement(min(20, width), width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width if self.width is None else min(self.width, options.max_width)
        height = self.height if options.height is None else options.height
        for line in self.lines(width, height):
            yield line

    def _colour(self, s: _Series) -> str | None:
        return s.colour if self.colour else None

    def legend(self) -> list[Text]:
        """One entry per series: line style + marker sample in its colour, then the name."""
        entries = []
        for s in self.items:
            entry = Text()
            sample = f"{s.dash_char * 2}{s.marker}{s.dash_char * 2}"
            entry.append(sample, style=Style(color=self._colour(s), bold=True))
            entry.append(f" {s.name}")
            if s.se is not None and self.band_label:
                entry.append(f" {self.band_label}", style="dim")
            entries.append(entry)
        return entries

    def lines(self, width: int, height: int) -> list[Text]:
        """The chart as lines of at most ``width`` cells (exactly ``height`` lines if it fits)."""
        width = max(1, width)
        out: list[Text] = []
        if self.title:
            t = Text(self.title, style="bold", no_wrap=True)
            t.truncate(width, overflow="ellipsis")
            t.align("center", width)
            out.append(t)
        if self.y_label:
            out.append(Text(self.y_label, style="italic", no_wrap=True))
        legend = _wrap_entries(self.legend(), width) if self.show_legend and self.items else []
        rows = max(2, height - len(out) - 2 - len(legend))

        (x0, x1), _, has_data = _ranges(self.items, y_pad=0.0)
        axis = self.y_axis(rows)
        y_labels = format_ticks(axis.ticks, axis.step)
        margin = max((len(s) for s in y_labels), default=1) + 1
        cols = max(2, width - margin - 1)
        hpx, wpx = rows * 4, cols * 2

        def to_px(x: np.ndarray) -> np.ndarray:
            return (x - x0) / (x1 - x0) * (wpx - 1)

        def to_py(y: np.ndarray) -> np.ndarray:
            return 1.5 + (axis.top - y) / axis.unit * 4  # a row's value sits in its middle

        dots = np.zeros((rows, cols), dtype=np.int64)  # braille bits of all curves
        styles = np.full((rows, cols), None, dtype=object)
        best = np.zeros((rows, cols), dtype=np.int64)  # weight of the curve that owns the cell
        for s in self.items:
            for band in self._band_curves(s):
                codes = self._layer_codes(to_px(s.x), to_py(band), (1, 1), hpx, wpx)
                self._paint(dots, styles, best, codes, Style(color=self._colour(s), dim=True), weight=0)
        for s in self.items:
            codes = self._layer_codes(to_px(s.x), to_py(s.y), s.dash, hpx, wpx)
            self._paint(dots, styles, best, codes, Style(color=self._colour(s)), weight=1)
        chars = np.where(dots > 0, BRAILLE[dots], " ").astype(object)
        max_markers = max(1, cols // 8)
        taken: dict[tuple[int, int], float] = {}  # cell -> the pixel row (exact) of its marker's value

        def free(r: int, c: int) -> bool:
            return 0 <= r < rows and 0 <= c < cols and (r, c) not in taken

        def put(r: int, c: int, y: float, marker: str, style: Style) -> None:
            taken[(r, c)] = y
            chars[r, c] = marker
            styles[r, c] = style

        for s in self.items:
            idx = _marker_points(s, max_markers, len(self.items))
            exact = to_py(s.y[idx])
            py = np.round(exact).astype(int)
            rs = np.clip(py // 4, 0, rows - 1)
            cs = np.clip(np.round(to_px(s.x[idx])).astype(int) // 2, 0, cols - 1)
            style = Style(color=self._colour(s), bold=True)
            for r, c, up, y in zip(rs.tolist(), cs.tolist(), (py % 4 < 2).tolist(), exact.tolist()):
                if free(r, c):
                    put(r, c, y, s.marker, style)
                    continue
                # Another curve's marker in this cell (curves that meet, one epoch): the higher
                # value goes above the lower one — into the next cell on its side, or, at the
                # plot's edge, the other marker moves aside — else beside it; every curve keeps
                # its marker and their order stays readable.
                if y != taken[(r, c)]:
                    up = y < taken[(r, c)]
                v = -1 if up else 1
                if free(r + v, c):
                    put(r + v, c, y, s.marker, style)
                elif free(r - v, c):
                    put(r - v, c, taken.pop((r, c)), chars[r, c], styles[r, c])
                    put(r, c, y, s.marker, style)
                else:
                    spot = next(((r, c + d) for d in (1, -1) if free(r, c + d)), (r, c))
                    put(*spot, y, s.marker, style)
        if not has_data:
            msg = self.empty[:cols]
            start = (cols - len(msg)) // 2
            chars[rows // 2, start : start + len(msg)] = list(msg)

        every = 1 if axis.step / axis.unit > 1.5 else 2  # label every tick unless they are on adjacent rows
        tick_rows = {r: label for k, (r, label) in enumerate(zip(axis.rows, y_labels)) if k % every == 0 and 0 <= r < rows}
        for r in range(rows):
            line = Text(no_wrap=True, overflow="crop")
            label = tick_rows.get(r, "")
            line.append(label.rjust(margin - 1) + " ")
            line.append("┤" if label else "│")
            self._append_cells(line, chars[r], styles[r])
            out.append(line)

        out += self._x_axis(margin, cols, wpx, x0, x1)
        out += legend
        for line in out:
            line.no_wrap = True
            line.truncate(width, overflow="crop")
        return out

    def y_axis(self, rows: int) -> TickAxis:
        """The y axis of a plot ``rows`` text rows high: from below the lowest to above the highest
        finite value of every series (and band), none left out."""
        _, (y0, y1), _ = _ranges(self.items, y_pad=0.0)
        return even_ticks(y0, y1, rows)

    @staticmethod
    def _band_curves(s: _Series) -> list[np.ndarray]:
        if s.se is None:
            return []
        return [s.y - s.se, s.y + s.se]

    @staticmethod
    def _layer_codes(
        px: np.ndarray, py: np.ndarray, dash: tuple[int, int], hpx: int, wpx: int
    ) -> np.ndarray:
        """Braille dot codes (rows, cols) of one curve."""
        on = np.zeros((hpx, wpx), dtype=bool)
        r, c = _polyline_pixels(px, py, dash)
        ok = (r >= 0) & (r < hpx) & (c >= 0) & (c < wpx)
        on[r[ok], c[ok]] = True
        return braille_codes(on)

    @staticmethod
    def _paint(dots: np.ndarray, styles: np.ndarray, best: np.ndarray, codes: np.ndarray,
               style: Style, weight: int) -> None:
        """Merge a curve's dots into the cells; a cell takes the style of the curve with the
        most dots in it (lines always win over bands; ties go to the later curve)."""
        dots |= codes
        score = np.unpackbits(codes.astype(np.uint8)[..., None], axis=-1).sum(-1) + weight * 16
        take = (codes > 0) & (score >= best)
        styles[take] = style
        best[take] = score[take]

    @staticmethod
    def _append_cells(line: Text, chars: np.ndarray, styles: np.ndarray) -> None:
        start = 0
        for i in range(1, len(chars) + 1):
            if i == len(chars) or styles[i] is not styles[start]:
                line.append("".join(chars[start:i]), style=styles[start])
                start = i

    def _x_axis(self, margin: int, cols: int, wpx: int, x0: float, x1: float) -> list[Text]:
        integer = _integer_x(self.items)
        ticks, step = nice_ticks(x0, x1, target=max(2, cols // 10), integer=integer)
        labels = format_ticks(ticks, step)
        axis = ["─"] * cols
        text = [" "] * (margin + 1 + cols)
        used = np.zeros(len(text), dtype=bool)
        for tick, label in zip(ticks, labels):
            c = int(np.round((tick - x0) / (x1 - x0) * (wpx - 1))) // 2
            if not 0 <= c < cols:
                continue
            axis[c] = "┬"
            start = min(max(0, margin + 1 + c - len(label) // 2), len(text) - len(label))
            end = start + len(label)
            if used[max(0, start - 1) : end + 1].any():
                continue
            text[start:end] = list(label)
            used[start:end] = True
        # The axis title where no tick label is: under the y labels, else after the last tick label
        # (it never takes a tick's place: the last epoch keeps its number), else left out.
        n = len(self.x_label)
        if n:
            if n <= margin and not used[: n + 1].any():
                text[:n] = list(self.x_label)
            elif n + 2 < len(text) and not used[len(text) - n - 1 :].any():
                text[len(text) - n :] = list(self.x_label)
        axis_line = Text(" " * margin + "└" + "".join(axis), no_wrap=True)
        return [axis_line, Text("".join(text).rstrip(), no_wrap=True)]


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _draw_marker(
    draw: Any, kind: str, x: float, y: float, r: float, colour: tuple[int, int, int]
) -> None:
    box = (x - r, y - r, x + r, y + r)
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    elif kind == "triangle":
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
    elif kind == "diamond":
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=colour)
    elif kind == "ring":
        draw.ellipse(box, outline=colour, width=2)
    elif kind == "box":
        draw.rectangle(box, outline=colour, width=2)
    else:
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], outline=colour, width=2)


def _finite_runs(mask: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the maximal runs of True in ``mask``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    return np.split(idx, breaks)


PNG_LEGEND_LINE = 18  # pixels per legend row


def _png_legend_places(text_widths: list[int], width: int) -> list[tuple[int, int]]:
    """(x offset, row) of each legend entry (line sample, marker, text) laid out left to right
    in rows of at most ``width`` pixels."""
    places, x, row = [], 0, 0
    for tw in text_widths:
        w = 38 + tw
        if x and x + w > width:
            x, row = 0, row + 1
        places.append((x, row))
        x += w + 24
    return places


def save_chart_png(
    series: SeriesMap,
    path: str | os.PathLike[str],
    title: str = "",
    bands: BandMap | None = None,
    width: int = 800,
    height: int = 480,
    x_label: str = "epoch",
    y_label: str = "",
    x_log: bool = False,
    band_label: str = "± SE",
) -> Path:
    """Draw the same chart as :class:`LineChart` into a PNG (written atomically); returns the path.

    Lines in distinct colours with distinct markers, ± SE bands as translucent areas, axes
    with round ticks and a light grid, the legend in rows below the x axis (never over the
    data). ``x_log``: a base-10
    logarithmic x axis with ticks at powers of ten (non-positive x values are left out).
    ``band_label`` follows a banded series' name in the legend (e.g. "± 2 SE" for 2·SE bands).
    Text may write p̃ as "p\u0303" or "p~": both are drawn as a p with a tilde over it.
    """
    from PIL import Image, ImageDraw

    if x_log:
        series = {name: (_log10_or_nan(pair[0]), pair[1]) for name, pair in series.items()}
    items = _prepare(series, bands)
    (x0, x1), (y0, y1), has_data = _ranges(items, x_pad=0.02, y_pad=0.06)
    font, small = _font(14), _font(12)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def text_size(s: str, f: Any) -> tuple[int, int]:
        return round(_text_width(draw, s, f)), _text_height(draw, s, f)

    legend_rows = [s.name + (f" {band_label}" if s.se is not None and band_label else "") for s in items]
    legend_at = _png_legend_places([text_size(r, small)[0] for r in legend_rows], width - 32)
    legend_h = (max((row for _, row in legend_at), default=-1) + 1) * PNG_LEGEND_LINE + (6 if items else 0)
    plot_h_guess = height - 90 - legend_h
    y_ticks, y_step = nice_ticks(y0, y1, target=max(2, plot_h_guess // 60))
    y_labels = format_ticks(y_ticks, y_step)
    label_w = max((text_size(s, small)[0] for s in y_labels), default=10)
    left = label_w + 18 + (22 if y_label else 0)
    top = 36 if title else 14
    right, bottom = width - 16, height - (52 if x_label else 34) - legend_h
    if right - left < 20 or bottom - top < 20:
        raise DataError(f"chart size {width}x{height} is too small to draw")

    def sx(x: np.ndarray) -> np.ndarray:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def sy(y: np.ndarray) -> np.ndarray:
        return bottom - (y - y0) / (y1 - y0) * (bottom - top)

    integer = _integer_x(items) or x_log
    x_ticks, x_step = nice_ticks(x0, x1, target=max(2, (right - left) // 90), integer=integer)
    x_labels = [f"{10.0 ** t:,.0f}" if 0 <= t <= 6 else f"1e{t:.0f}" for t in x_ticks] if x_log else format_ticks(x_ticks, x_step)
    grid_colour, axis_colour, text_colour = (232, 232, 232), (60, 60, 60), (30, 30, 30)
    for t, s in zip(y_ticks, y_labels):
        y = float(sy(np.array(t)))
        draw.line([(left, y), (right, y)], fill=grid_colour)
        draw.line([(left - 5, y), (left, y)], fill=axis_colour)
        w, h = text_size(s, small)
        _draw_text(draw, (left - 8 - w, y - h / 2 - 2), s, text_colour, small)
    for t, s in zip(x_ticks, x_labels):
        x = float(sx(np.array(t)))
        draw.line([(x, top), (x, bottom)], fill=grid_colour)
        draw.line([(x, bottom), (x, bottom + 5)], fill=axis_colour)
        w, _ = text_size(s, small)
        _draw_text(draw, (x - w / 2, bottom + 8), s, text_colour, small)
    draw.rectangle([left, top, right, bottom], outline=axis_colour)

    # Bands first, translucent, on their own layer.
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    odraw = ImageDraw.Draw(overlay)
    for s in items:
        if s.se is None:
            continue
        ok = np.isfinite(s.x) & np.isfinite(s.y) & np.isfinite(s.se)
        for run in _finite_runs(ok):
            xs = sx(s.x[run])
            upper = list(zip(xs, sy(s.y[run] + s.se[run])))
            lower = list(zip(xs[::-1], sy((s.y[run] - s.se[run])[::-1])))
            if len(run) == 1:
                odraw.line(upper + lower, fill=s.rgb + (90,), width=3)
            else:
                odraw.polygon(upper + lower, fill=s.rgb + (60,))
    img.paste(Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB"))
    draw = ImageDraw.Draw(img)

    for s in items:
        ok = np.isfinite(s.x) & np.isfinite(s.y)
        for run in _finite_runs(ok):
            pts = list(zip(sx(s.x[run]).tolist(), sy(s.y[run]).tolist()))
            if len(pts) > 1:
                draw.line(pts, fill=s.rgb, width=2, joint="curve")
        kind = PNG_MARKERS[s.index % len(PNG_MARKERS)]
        for i in _marker_points(s, max(1, (right - left) // 40), len(items)):
            _draw_marker(draw, kind, float(sx(s.x[i])), float(sy(s.y[i])), 4, s.rgb)

    if not has_data:
        w, h = text_size("(no data)", font)
        centre = ((left + right - w) / 2, (top + bottom - h) / 2)
        _draw_text(draw, centre, "(no data)", text_colour, font)
    if title:
        w, _ = text_size(title, font)
        _draw_text(draw, ((width - w) / 2, 10), title, text_colour, font)
    if x_label:
        w, _ = text_size(x_label, font)
        _draw_text(draw, ((left + right - w) / 2, bottom + 28), x_label, text_colour, font)
    if y_label:
        w, h = text_size(y_label, font)
        label = Image.new("RGB", (w + 4, h + 11), "white")
        _draw_text(ImageDraw.Draw(label), (2, 3), y_label, text_colour, font)  # 3 px above: room for a tilde
        rotated = label.rotate(90, expand=True)
        img.paste(rotated, (4, int((top + bottom - rotated.height) / 2)))
        draw = ImageDraw.Draw(img)

    legend_top = height - legend_h
    for s, r, (x, row) in zip(items, legend_rows, legend_at):  # the legend, below the x axis
        bx, cy = 16 + x, legend_top + row * PNG_LEGEND_LINE + PNG_LEGEND_LINE / 2
        draw.line([(bx, cy), (bx + 30, cy)], fill=s.rgb, width=2)
        _draw_marker(draw, PNG_MARKERS[s.index % len(PNG_MARKERS)], bx + 15, cy, 4, s.rgb)
        _, h = text_size(r, small)
        _draw_text(draw, (bx + 38, cy - h / 2 - 3), r, text_colour, small)

    return atomic_save(path, lambda tmp: img.save(tmp, format="PNG"))


def _log10_or_nan(values: Any) -> np.ndarray:
    x = _floats(values, "x")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)


def sparkline(values: Sequence[float] | Any, width: int | None = None) -> str:
    """A one-line bar chart with ``▁▂▃▄▅▆▇█`` (min -> ▁, max -> █; NaN -> space).

    With ``width``, longer inputs are block-averaged down to ``width`` characters; shorter ones
    are not stretched. A constant series is drawn at mid height.
    """
    v = _floats(values, "sparkline")
    if width is not None and width < 1:
        return ""
    if width is not None and v.size > width:
        edges = np.linspace(0, v.size, width + 1).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN bins stay NaN
            v = np.array([np.nanmean(v[a:b]) for a, b in zip(edges[:-1], edges[1:])])
    ok = np.isfinite(v)
    if not ok.any():
        return " " * v.size
    lo, hi = float(v[ok].min()), float(v[ok].max())
    if hi == lo:
        level = np.full(v.size, 3)
    else:
        level = np.round((np.where(ok, v, lo) - lo) / (hi - lo) * 7).astype(int)
    return "".join(SPARK_CHARS[k] if good else " " for k, good in zip(level, ok))
