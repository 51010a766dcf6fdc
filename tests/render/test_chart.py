"""Terminal line charts, PNG charts and sparklines."""

import numpy as np
import pytest
from PIL import Image
from rich.cells import cell_len
from rich.console import Console

from bihm_app.errors import DataError
from bihm_app.render.chart import (
    MARKERS,
    PNG_COLOURS,
    LineChart,
    format_ticks,
    nice_ticks,
    save_chart_png,
    sparkline,
)

EPOCHS = np.arange(1, 31)
CURVES = {
    "log p": (EPOCHS, -200 + 110 * (1 - np.exp(-EPOCHS / 6))),
    "log p~*": (EPOCHS, -205 + 110 * (1 - np.exp(-EPOCHS / 6))),
    "2 log Z": (EPOCHS, np.linspace(-150, -120, 30)),
}


def _text(chart, width=80, no_color=True):
    console = Console(width=width, record=True, color_system="truecolor", no_color=no_color)
    console.print(chart)
    return console.export_text().splitlines()


def _plot_rows(lines):
    """The plotting rows: everything after the y-axis character."""
    rows = [s for s in lines if "│" in s or "┤" in s]
    return [s.split("┤", 1)[-1] if "┤" in s else s.split("│", 1)[-1] for s in rows]


def test_every_series_has_a_marker_and_a_legend_entry_without_colour():
    lines = _text(LineChart(CURVES, title="valid", y_label="nats"))
    plot = "\n".join(_plot_rows(lines))
    legend = lines[-1]
    for i, name in enumerate(CURVES):
        assert MARKERS[i] in plot, f"marker of {name} not drawn"
        assert name in legend and f"{MARKERS[i]}" in legend
    assert lines[0].strip() == "valid" and lines[1] == "nats"


def test_series_get_distinct_colours_and_line_styles():
    chart = LineChart(CURVES)
    legend = chart.legend()
    samples = [t.plain.split(" ")[0] for t in legend]
    assert len(set(samples)) == 3  # distinct dash/marker samples
    colours = set()
    for line in chart.lines(80, 16):
        for span in line.spans:
            style = span.style
            if hasattr(style, "color") and style.color is not None:
                colours.add(style.color.name)
    assert {"bright_cyan", "bright_magenta", "bright_yellow"} <= colours


@pytest.mark.parametrize("width", [24, 40, 80, 131])
@pytest.mark.parametrize("height", [8, 16, 30])
def test_chart_fits_width_and_height(width, height):
    chart = LineChart(CURVES, title="a long title that will not fit anywhere", height=height)
    lines = _text(chart, width)
    assert max(cell_len(s) for s in lines) <= width
    if width >= 40:
        assert len(lines) == height


def test_nan_values_leave_a_gap():
    x = np.arange(10.0)
    full = {"a": (x, np.linspace(0, 9, 10))}
    gappy = {"a": (x, np.where((x >= 3) & (x <= 6), np.nan, np.linspace(0, 9, 10)))}
    width, height = 60, 14

    def columns_with_ink(series):
        rows = LineChart(series, x_label="").lines(width, height)
        plot = [r.plain for r in rows if "│" in r.plain or "┤" in r.plain]
        start = plot[0].index("┤") + 1 if "┤" in plot[0] else plot[0].index("│") + 1
        ink = np.zeros(width - start, bool)
        for r in plot:
            body = r[start:]
            ink[: len(body)] |= np.array([c != " " for c in body])
        return ink

    full_ink, gap_ink = columns_with_ink(full), columns_with_ink(gappy)
    n = full_ink.size
    middle = slice(int(n * 0.3) + 2, int(n * 0.7) - 2)  # strictly between x=2 and x=7
    assert full_ink[middle].all()
    assert not gap_ink[middle].any()
    assert gap_ink[: int(n * 0.2)].any() and gap_ink[int(n * 0.8) :].any()


def test_constant_series_and_single_point_do_not_crash():
    series = {"flat": ([1, 2, 3], [5.0, 5.0, 5.0]), "one": ([2], [5.0])}
    lines = _text(LineChart(series, height=10), 50)
    plot = "\n".join(_plot_rows(lines))
    assert MARKERS[0] in plot and MARKERS[1] in plot
    assert any("5" in s.split("┤")[0] for s in lines if "┤" in s)  # 5 is inside the tick range
    lines = _text(LineChart({"one": ([3], [0.0])}, height=8), 40)
    assert MARKERS[0] in "\n".join(lines)


def test_empty_or_all_nan_series_says_no_data():
    lines = _text(LineChart({"a": ([], []), "b": ([1, 2], [np.nan, np.nan])}, height=10), 50)
    assert any("(no data)" in s for s in lines)


def test_bands_are_drawn_dimmer_than_lines():
    y = np.linspace(0, 10, 30)
    se = np.full(30, 2.0)
    with_band = LineChart({"a": (EPOCHS, y)}, bands={"a": se}).lines(80, 20)
    without = LineChart({"a": (EPOCHS, y)}).lines(80, 20)

    def dim_cells(lines):
        return sum(len(line.plain[s.start : s.end]) for line in lines for s in line.spans
                   if getattr(s.style, "dim", False) and s.style.color is not None)  # fmt: skip

    assert dim_cells(with_band) > 10 and dim_cells(without) == 0
    assert "±SE" in with_band[-1].plain


def test_bad_series_inputs_raise_data_error():
    with pytest.raises(DataError, match="2 x values but 3 y values"):
        LineChart({"a": ([1, 2], [1, 2, 3])})
    with pytest.raises(DataError, match="unknown series"):
        LineChart({"a": ([1], [1])}, bands={"b": [1]})
    with pytest.raises(DataError, match="band 'a'"):
        LineChart({"a": ([1, 2], [1, 2])}, bands={"a": [1]})


def test_nice_ticks_are_round_and_inside_the_range():
    ticks, step = nice_ticks(-187.3, -88.9, target=5)
    assert step in (10, 20, 25, 50) and ticks[0] >= -187.3 and ticks[-1] <= -88.9
    assert np.allclose(ticks / step, np.round(ticks / step))
    ticks, step = nice_ticks(1, 3, target=10, integer=True)
    assert step == 1 and ticks.tolist() == [1, 2, 3]
    assert format_ticks(np.array([0.25, 0.5]), 0.25) == ["0.25", "0.50"]
    assert format_ticks(np.array([-100.0, -50.0]), 50.0) == ["-100", "-50"]


def test_png_chart_is_written_with_every_series_colour(tmp_path):
    bands = {"log p": np.full(30, 3.0)}
    path = save_chart_png(CURVES, tmp_path / "c.png", title="curves", bands=bands, y_label="nats")
    img = Image.open(path)
    assert img.size == (800, 480) and img.mode == "RGB"
    pixels = {tuple(p) for p in np.asarray(img).reshape(-1, 3)}
    assert len(pixels) > 20  # anti-aliased text, lines, bands: not a blank canvas
    for colour in PNG_COLOURS[:3]:
        assert colour in pixels


def test_png_chart_handles_constant_single_and_empty(tmp_path):
    series = {"c": ([1, 2], [3, 3]), "one": ([1], [2])}
    save_chart_png(series, tmp_path / "a.png", width=400, height=300)
    save_chart_png({"e": ([], [])}, tmp_path / "b.png")
    assert Image.open(tmp_path / "a.png").size == (400, 300)
    with pytest.raises(DataError, match="too small"):
        save_chart_png(CURVES, tmp_path / "tiny.png", width=30, height=30)


def test_sparkline_extremes_constant_nan_and_width():
    s = sparkline([3, 1, 2, 9])
    assert s[1] == "▁" and s[3] == "█" and len(s) == 4
    assert sparkline([7, 7, 7]) == "▄▄▄"
    assert sparkline([0, float("nan"), 1]) == "▁ █"
    assert sparkline([]) == ""
    assert sparkline([float("nan")] * 2) == "  "
    long = sparkline(np.arange(100.0), width=10)
    assert len(long) == 10 and long[0] == "▁" and long[-1] == "█"
    assert list(long) == sorted(long)  # monotone input stays monotone
    assert len(sparkline([1, 2], width=10)) == 2  # short input is not stretched


def test_png_chart_with_a_log_x_axis_places_points_by_decade(tmp_path):
    """Catches a linear axis under x_log: y = log10(K) against K must be drawn as a straight line
    (on a linear axis it is a bent curve), and non-positive x values must not break the chart."""
    from PIL import Image

    ks = [1, 3, 10, 30, 100, 300, 1000]
    path = save_chart_png({"a": (ks, np.log10(ks)), "b": ([0, -1], [5.0, 5.0])}, tmp_path / "k.png", x_log=True)
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    blue = (np.abs(img - np.array(PNG_COLOURS[0])).sum(axis=2) < 40)
    cols = np.flatnonzero(blue.any(axis=0))
    lo, hi = np.quantile(cols, [0.2, 0.8])
    xs = np.array([c for c in cols if lo <= c <= hi])
    ys = np.array([np.flatnonzero(blue[:, c]).mean() for c in xs])
    fit = np.polyfit(xs, ys, 1)
    assert fit[0] < 0 and np.abs(np.polyval(fit, xs) - ys).max() < 4
