"""A line chart of :class:`~bihm_app.tui.widgets.curves.Curve` objects, drawn by the same
:class:`~bihm_app.render.chart.LineChart` as the command line's charts.

The chart holds no data of its own beyond what it was last given: the screen hands it curves from
the run's :class:`RunSeries` on a timer, and it redraws only then (or when its size changes).
Standard errors are drawn as a dotted band y ± 2 se in the colour of the line. The title stays on
the first row and the legend below the x axis, outside the plot; every curve has its own marker
and line style, so the chart reads under ``NO_COLOR`` too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Group
from textual.widget import Widget

from bihm_app.render.chart import LineChart
from bihm_app.tui.widgets.curves import Curve


class MetricChart(Widget):
    """Plots curves; ``show()`` replaces them and schedules one redraw."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 7; }
    """

    def __init__(self, title: str = "", xlabel: str = "", empty: str = "no data yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.xlabel = xlabel
        self.empty = empty
        self.curves: list[Curve] = []
        self.draws = 0  # how many times the data was replaced (redraw counter)
        self._cache: tuple[tuple, Group] | None = None

    def show(self, curves: Sequence[Curve], title: str | None = None, empty: str | None = None) -> None:
        """Draw these curves (``title``, ``empty``: a new title, a new text for no data)."""
        self.curves = list(curves)
        if title is not None:
            self.title = title
        if empty is not None:
            self.empty = empty
        self.draws += 1
        self._cache = None
        self.refresh()

    def chart(self) -> LineChart:
        """The renderable of the current curves (a curve with a positive se gets a ± 2 se band)."""
        series, bands = {}, {}
        for c in self.curves:
            if len(c.x) == 0:
                continue
            series[c.label] = (np.asarray(c.x, float), np.asarray(c.y, float))
            if c.se is not None and np.any(np.asarray(c.se) > 0):
                bands[c.label] = 2 * np.asarray(c.se, float)
        # One curve is named by the title: its legend row would only repeat it.
        # Under NO_COLOR Textual turns colours into greys (bright magenta: grey 237 on 234); the
        # curves then take the text colour and differ by marker and line style only.
        return LineChart(series, title=self.title, x_label=self.xlabel, bands=bands, legend=len(series) > 1,
                         band_label="", empty=self.empty, colour=not self.app.no_color)  # fmt: skip

    def render(self) -> Group:
        width, height = self.content_size
        key = (width, height, self.draws)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, Group(*self.chart().lines(width, height)))
        return self._cache[1]
