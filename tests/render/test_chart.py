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


# -- issue #15: even nice ticks, markers that stay visible, legends outside the data ---------------
def _tick_rows(lines):
    """(row, value) of every labelled y tick of a rendered chart."""
    return [(i, float(s.split("┤")[0])) for i, s in enumerate(lines) if "┤" in s and s.split("┤")[0].strip()]


def _nice(step: float) -> bool:
    mantissa = step / 10 ** np.floor(np.log10(step))
    return bool(np.any(np.isclose(mantissa, [1, 2, 5, 10])))


def test_even_ticks_are_nice_steps_on_evenly_spaced_rows_and_cover_the_data():
    """Catches ticks at rounded rows (uneven gaps), steps other than 1, 2, 5 × 10^k, and axes
    that cut data off: 500 random ranges and heights."""
    from bihm_app.render.chart import even_ticks

    rng = np.random.default_rng(15)
    for _ in range(500):
        lo = rng.uniform(-1e3, 1e3) * 10.0 ** rng.integers(-3, 3)
        hi = lo + rng.uniform(1e-3, 1e3) * 10.0 ** rng.integers(-2, 2)
        rows = int(rng.integers(2, 60))
        axis = even_ticks(lo, hi, rows)
        assert axis.bottom <= lo + 1e-9 * abs(lo) + 1e-12 and axis.top >= hi - 1e-9 * abs(hi) - 1e-12
        assert _nice(axis.step)
        ticks, tick_rows = axis.ticks, np.array(axis.rows)
        assert len(ticks) >= 1 and np.all((tick_rows >= 0) & (tick_rows < rows))
        if len(ticks) > 1:
            assert np.allclose(-np.diff(ticks), axis.step)
            assert np.all(np.diff(tick_rows) == tick_rows[1] - tick_rows[0])
            assert rows < 5 or tick_rows[1] - tick_rows[0] >= 2  # labels never on adjacent rows


@pytest.mark.parametrize("height", [8, 11, 16, 23, 40])
@pytest.mark.parametrize("lo,hi", [(-250.7, -147.4), (-0.013, 0.041), (0.5, 0.5001), (-95.3, -88.1)])
def test_chart_tick_labels_are_an_arithmetic_progression_on_evenly_spaced_rows(height, lo, hi):
    """The drawn labels: equal value steps of a nice size on equally spaced rows, the curve between
    the outermost labels' rows extended to the plot (nothing drawn outside the plot rows)."""
    x = np.arange(20.0)
    lines = [t.plain for t in LineChart({"a": (x, np.linspace(lo, hi, 20))}, title="t").lines(60, height)]
    ticks = _tick_rows(lines)
    assert len(ticks) >= 2, lines
    rows, values = np.array([r for r, _ in ticks]), np.array([v for _, v in ticks])
    steps = -np.diff(values)
    assert np.allclose(steps, steps[0], rtol=1e-6) and _nice(steps[0]), values
    assert np.all(np.diff(rows) == rows[1] - rows[0]), rows


def test_curves_meeting_in_one_cell_keep_both_markers():
    """Catches one epoch of two close curves drawn as one marker (the second overwrote the first)."""
    chart = LineChart({"log p~*": ([1], [-172.57]), "log p": ([1], [-172.0])}, bands={"log p~*": [4.5], "log p": [4.0]},
                      height=10)  # fmt: skip
    plot = "\n".join(_plot_rows([t.plain for t in chart.lines(50, 10)]))
    assert MARKERS[0] in plot and MARKERS[1] in plot


def test_legend_rows_are_below_the_plot_rows():
    lines = [t.plain for t in LineChart(CURVES, title="valid").lines(70, 18)]
    axis = max(i for i, s in enumerate(lines) if "└" in s)
    legend = [i for i, s in enumerate(lines) if "2 log Z" in s]
    assert legend and min(legend) > axis + 1


def test_png_legend_never_covers_the_curves(tmp_path):
    """Catches a legend box drawn inside the plot (over data): two curves that cross the plot
    corner to corner must show in every column of the plot, with legend names long enough that
    a box in any corner would hide a stretch of one of them."""
    x = np.linspace(1, 1000, 60)
    series = {"BiHM, K sweep on the test set (this run)": (x, np.linspace(-100, -80, 60)),
              "reweighted wake-sleep baseline, K sweep": (x, np.linspace(-80, -100, 60))}  # fmt: skip
    img = np.asarray(Image.open(save_chart_png(series, tmp_path / "k.png", x_label="K")).convert("RGB")).astype(int)
    frame = np.all(img == 60, axis=2)  # the plot's frame (axis colour)
    cols = np.flatnonzero(frame.sum(axis=0) > 0.5 * frame.sum(axis=0).max())
    rows = np.flatnonzero(frame.sum(axis=1) > 0.5 * frame.sum(axis=1).max())
    left, right, top, bottom = cols.min(), cols.max(), rows.min(), rows.max()
    inside = img[top + 2 : bottom - 1, left + 18 : right - 17]  # the curves start 2 % in
    middle = np.abs(np.arange(inside.shape[1]) - inside.shape[1] / 2) < 0.05 * inside.shape[1]  # they cross here
    for colour in PNG_COLOURS[:2]:
        present = (np.abs(inside - np.array(colour)).sum(axis=2) < 60).any(axis=0) | middle
        assert present.all(), f"curve {colour} hidden in {np.count_nonzero(~present)} columns"


def test_colourless_chart_keeps_markers_and_line_styles():
    """colour=False (the dashboard under NO_COLOR): no span carries a colour, the glyphs stay."""
    chart = LineChart(CURVES, colour=False, bands={"log p": np.full(30, 3.0)})
    lines = chart.lines(80, 18)
    assert not any(sp.style.color for t in lines for sp in t.spans if hasattr(sp.style, "color"))
    plot = "\n".join(_plot_rows([t.plain for t in lines]))
    assert all(m in plot for m in MARKERS[:3])
