"""A line chart of :class:`~bihm_app.tui.widgets.run_metrics.Curve` objects (textual-plotext).

The chart holds no data of its own beyond what it was last given: the screen hands it curves from
the run's :class:`RunSeries` on a timer, and it redraws only then. Standard errors are drawn as a
dotted band y ± 2 se in the colour of the line.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from textual_plotext import PlotextPlot

from bihm_app.tui.widgets.curves import Curve

COLORS = ("blue+", "red+", "green+", "orange+", "magenta+", "cyan+")


class MetricChart(PlotextPlot):
    """Plots curves; ``show()`` replaces them and schedules one redraw."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 8; }
    """

    def __init__(self, title: str = "", xlabel: str = "", empty: str = "no data yet", **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.xlabel = xlabel
        self.empty = empty
        self.curves: list[Curve] = []
        self.draws = 0  # how many times the data was replaced (redraw counter)
        self._draw()

    def show(self, curves: Sequence[Curve], title: str | None = None) -> None:
        self.curves = list(curves)
        if title is not None:
            self.title = title
        self._draw()
        self.draws += 1
        self.refresh()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        drawn = False
        for i, c in enumerate(self.curves):
            if len(c.x) == 0:
                continue
            color = COLORS[i % len(COLORS)]
            x, y = np.asarray(c.x, float).tolist(), np.asarray(c.y, float).tolist()
            if c.se is not None and np.any(np.asarray(c.se) > 0):
                band = 2 * np.asarray(c.se, float)
                plt.plot(x, (np.asarray(y) + band).tolist(), marker="⋅", color=color)
                plt.plot(x, (np.asarray(y) - band).tolist(), marker="⋅", color=color)
            plt.plot(x, y, marker="braille", color=color, label=c.label)
            drawn = True
        if not drawn:
            plt.title(f"{self.title} — {self.empty}" if self.title else self.empty)
