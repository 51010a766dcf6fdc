"""The dashboard's layout at 80×24 and its charts (issue #15), read from what is on screen.

Every test reads the text the screen draws (the compositor's lines), so it checks what a person at
an 80×24 terminal sees, not what a widget holds.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from textual.app import App
from textual.widgets import Checkbox, Input

from bihm_app.render.chart import MARKERS
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.compare import CompareScreen
from bihm_app.tui.screens.layers import LayersScreen
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.samples import SamplesScreen
from bihm_app.tui.widgets.bitmap import BitmapImage
from bihm_app.tui.widgets.curves import Curve
from bihm_app.tui.widgets.metric_chart import MetricChart
from tests.tui.runs_fixture import make_run
from tests.tui.test_screens import runs_loaded, wait_for

SMALL = (80, 24)
SPARSE_MEAN = 0.3  # every Bernoulli mean of the "sparse" fixture model: below a 0.5 threshold
ADULT_DIM = 123


def screen_lines(app) -> list[str]:
    """The text of every row of the screen as drawn (toasts and all)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def footer_line(app) -> str:
    """The bottom row as drawn ("" while the screen is being switched)."""
    return (screen_lines(app) or [""])[-1]


def braille_dots(text: str) -> int:
    return sum(bin(ord(ch) - 0x2800).count("1") for ch in text if 0x2800 <= ord(ch) <= 0x28FF)


# -- every screen at 80×24 ------------------------------------------------------------------------
async def test_footer_keeps_help_and_quit_on_every_screen_at_80x24(runs_root):
    """Catches a footer that lists the screen's keys first and cuts ``?`` and ``q`` at 80 columns
    (Textual's Footer does: the application's keys come last), and one that offers ``?`` and ``q``
    where they type (the new-run form): there it must show ``f1`` and ``ctrl+q``, which work."""
    app = make_app(runs_root)
    letters, stand_ins = (r"\?\s*(Help|more)", r"(?<![\^\w])q\s*Quit"), (r"\bf1\s*(Help|more)", r"\^q\s*Quit")
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        openers = {
            "runs": (None, letters),
            "run": (lambda: app.open_run("beta"), letters),
            "samples": (lambda: app.open_samples("alpha"), letters),  # the picture screens share its footer
            "inpaint": (lambda: app.open_inpaint("alpha"), letters),  # the image index field is not focused
            "new run": (app.action_new_run, stand_ins),
        }
        for name, (open_screen, keys) in openers.items():
            if open_screen is not None:
                open_screen()
            # the footer recomposes (focus, a model loaded): wait for a whole one with the screen's keys
            await wait_for(pilot, lambda: re.search(r"^\s*\S.*\b(Help|more)\b.*\bQuit\s*$", footer_line(app)))
            footer = footer_line(app)
            assert all(re.search(k, footer) for k in keys), f"{name}: {footer!r}"
            if open_screen is not None:
                app.pop_screen()
                await pilot.pause(0.1)


async def test_inpaint_footer_follows_the_focus_of_its_text_field(runs_root):
    """Catches the inpaint screen's footer offering ``q`` while its image-index field has focus (q
    types there), and ``q`` not quitting once the focus is back on the picture."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        app.open_inpaint("alpha")
        await wait_for(pilot, lambda: app.screen.query("#inpaint-index"))
        screen = app.screen
        field = screen.query_one("#inpaint-index", Input)
        field.focus()
        # the footer recomposes when the focus moves and when the model has loaded: wait for a whole one
        await wait_for(pilot, lambda: re.search(r"\besc\s*Back.*\^q\s*Quit", footer_line(app)) is not None)
        footer = footer_line(app)
        assert not re.search(r"(?<![\^\w])q\s*Quit", footer) and re.search(r"\besc\s*Back", footer), footer
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and "q" in field.value
        field.value = "0"
        screen.query_one("#picture-scroll").focus()
        await wait_for(pilot, lambda: re.search(r"(?<![\^\w])q\s*Quit", footer_line(app)) is not None)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_run_view_at_80x24_keeps_both_chart_titles_and_stop_resume_in_view(runs_root):
    """Catches the validation chart losing its title on a short terminal and Stop/Resume below
    the fold (neither a visible button nor a visible footer key)."""
    lines = await run_view_lines(runs_root, "beta")
    text = "\n".join(lines)
    assert "batch bound (per update)" in text
    assert "validation log p~*, log p (per epoch)" in text
    assert "Stop" in text and "Resume" in text
    # the info line wraps between scores, never inside one ("… ± 0.37  2" / "log Z -4.09 ± 0.08")
    for score in (r"best log p~\* -?\d+\.\d+ ± \d+\.\d+", r"2 log Z -?\d+\.\d+ ± \d+\.\d+"):
        assert any(re.search(score, ln) for ln in lines), (score, lines[:6])


async def run_view_lines(root, name: str) -> list[str]:
    """The screen's rows once the run view of ``name`` has drawn its charts, at 80×24."""
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        app.open_run(name)
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        await pilot.pause(0.2)
        return screen_lines(app)


async def test_runs_table_at_80x24_shows_age_and_home_end_go_to_the_first_and_last_run(runs_root):
    """Catches a runs table wider than 80 columns (``age`` out of sight behind ten presses of →)
    and Home/End that scroll sideways instead of moving to the first/last run."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        screen = await runs_loaded(pilot)
        await pilot.pause(0.2)
        header = screen_lines(app)[1]
        assert re.search(r"\bage\b", header), header
        table = screen.query_one("#runs-table")
        assert table.row_count == 3
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_runs_table_at_80x24_shows_long_epoch_counts_whole(tmp_path):
    """Catches the epoch column cutting "12/25000" to "12/2500" (a UCI protocol allows 25,000
    epochs; a 7-cell column showed adult's 282/2000 as "282/200", a wrong number, not an ellipsis)."""
    from tests.tui.runs_fixture import make_run

    root = tmp_path / "runs"
    root.mkdir()
    make_run(root, "uci-nips-lr1e-3-s0", epochs=12, per_epoch=2, max_epochs=25000)
    app = make_app(root)
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        await pilot.pause(0.2)
        text = "\n".join(screen_lines(app))
        assert "12/25000" in text, text


async def test_runs_table_marks_a_cut_value_with_an_ellipsis(tmp_path):
    """Catches a cell cut silently to its column's width (the layers column showed a 9-layer net's
    "200,150,130,…" as "200,150,13", and "mushrooms" as "mushroom": another value, not a cut one)."""
    from tests.tui.runs_fixture import make_run

    root = tmp_path / "runs"
    root.mkdir()
    make_run(root, "deep", layers=(20, 15, 13, 10, 7, 5, 3, 2, 1) * 2, epochs=2, per_epoch=2)  # 44 characters
    app = make_app(root)
    async with app.run_test(size=(200, 40)) as pilot:  # the layers column grows to 40 at most
        await runs_loaded(pilot)
        await pilot.pause(0.2)
        text = "\n".join(screen_lines(app))
        assert "20,15,13,10,7,5,3,2,1,20,15,13,10,7,5,3…" in text and "3,2,1 " not in text, text


# -- picture grids -----------------------------------------------------------------------------------
async def test_sample_grid_in_half_blocks_wraps_to_80_columns(runs_root):
    """Catches a 4×4 grid of 28-pixel digits drawn 122 cells wide in half blocks (cut off at the
    right edge, no way to scroll to it): every row must fit the picture area."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        app.open_samples("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.generated >= 1)
        await pilot.press("b")
        await pilot.pause(0.2)
        img = app.screen.query_one("#picture", BitmapImage)
        lines = img.render().plain.splitlines()
        area = app.screen.query_one("#picture-scroll").scrollable_content_region.width
        assert len(lines) > 10 and max(len(s) for s in lines) <= area <= SMALL[0]
        assert img.region.right <= SMALL[0]


@pytest.mark.parametrize("screen_cls", [SamplesScreen, LayersScreen])
async def test_pictures_of_a_sparse_data_set_are_not_blank_at_80x24(runs_root, screen_cls):
    """Catches the 0.5 threshold that drew the adult set's samples and layers as an empty grid: a
    model whose every Bernoulli mean is 0.3 must show about 30 % of its pixels as ink (ordered
    dithering), not ~0 (a threshold) nor ~all."""
    make_run(runs_root, "sparse", layers=(6, 3), data="adult", n_visible=ADULT_DIM, visible_mean=SPARSE_MEAN)
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        (app.open_samples if screen_cls is SamplesScreen else app.open_layers)("sparse")
        await wait_for(pilot, lambda: isinstance(app.screen, screen_cls) and app.screen.generated >= 1, timeout=60)
        await pilot.pause(0.2)
        picture = app.screen.query_one("#picture", BitmapImage)
        ink, n = braille_dots(picture.render().plain), len(picture.images)  # 16 (layer 1: one, the means)
        data_ink = n * ADULT_DIM * SPARSE_MEAN  # the 9 padding pixels of each picture come on top
        assert 0.7 * data_ink <= ink <= 1.3 * data_ink + n * 9


# -- charts ----------------------------------------------------------------------------------------
class ChartApp(App):
    """One MetricChart filling the screen."""

    def __init__(self, curves: list[Curve], title: str = "validation (per epoch)") -> None:
        super().__init__()
        self.curves, self.chart_title = curves, title

    def compose(self):
        yield MetricChart(self.chart_title, "epoch", id="chart")

    def on_mount(self) -> None:
        self.query_one(MetricChart).show(self.curves)


def _curve(label: str, epochs: int, offset: float = 0.0, se: float = 0.0) -> Curve:
    x = np.arange(1, epochs + 1, dtype=float)
    y = -250.7 + 103.3 * (1 - np.exp(-x / 3)) + offset
    return Curve(label, x, y, np.full(epochs, se))


async def _chart_lines(curves: list[Curve], size=(60, 16)) -> list[str]:
    app = ChartApp(curves)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.1)
        return screen_lines(app)


def _is_nice(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5, 10))


@pytest.mark.parametrize("size", [(60, 16), (44, 10), (100, 30)])
async def test_chart_y_ticks_are_nice_numbers_on_evenly_spaced_rows(size):
    """Catches tick labels like −147.4, −181.8, −250.7: the labels must be an arithmetic
    progression with a 1, 2 or 5 × 10^k step, on rows equally far apart."""
    lines = await _chart_lines([_curve("alpha run", 12, se=0.8), _curve("beta run", 12, offset=4)], size)
    ticks = [(row, float(s.split("┤")[0])) for row, s in enumerate(lines) if "┤" in s and s.split("┤")[0].strip()]
    assert len(ticks) >= 2, lines
    rows, values = np.array([r for r, _ in ticks]), np.array([v for _, v in ticks])
    steps, gaps = -np.diff(values), np.diff(rows)
    assert np.allclose(steps, steps[0]) and _is_nice(steps[0]), values
    assert np.all(gaps == gaps[0]), rows


async def test_chart_legend_is_outside_the_plot():
    """Catches a legend drawn inside the plot area, over the data points."""
    lines = await _chart_lines([_curve("alpha run", 12), _curve("beta run", 12, offset=4)])
    axis = max(i for i, s in enumerate(lines) if "└" in s)
    legend = [i for i, s in enumerate(lines) if "alpha run" in s or "beta run" in s]
    assert legend and all(i > axis + 1 for i in legend), lines  # below the x axis and its labels
    assert not any("│" in lines[i] or "┤" in lines[i] for i in legend)


async def test_one_epoch_draws_a_marker_for_each_curve():
    """Catches one epoch drawn as a single braille dot: each curve's only point gets its marker,
    even when the two points fall into the same cell."""
    lines = await _chart_lines([_curve("alpha run", 1), _curve("beta run", 1, offset=0.5)])
    plot = "\n".join(s.split("┤")[-1].split("│")[-1] for s in lines if "┤" in s or "│" in s)
    assert MARKERS[0] in plot and MARKERS[1] in plot, lines


async def test_two_curves_under_no_color_use_different_glyphs(monkeypatch):
    """Catches curves told apart by colour only (under NO_COLOR both were braille in greys 243 and
    237 on 234, one nearly invisible): each curve has its own marker in the plot and its own
    line-and-marker sample in the legend, and no curve cell keeps a colour for Textual to grey out."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = ChartApp([_curve("alpha run", 30), _curve("beta run", 30, offset=8)])
    async with app.run_test(size=(70, 18)) as pilot:
        await pilot.pause(0.1)
        lines = screen_lines(app)
        chart = app.query_one(MetricChart)
        spans = [sp for t in chart.chart().lines(*chart.content_size) for sp in t.spans]
    plot = "\n".join(s.split("┤")[-1].split("│")[-1] for s in lines if "┤" in s or "│" in s)
    assert plot.count(MARKERS[0]) >= 2 and plot.count(MARKERS[1]) >= 2, lines
    legend = {s.split("alpha run")[0].split()[-1] for s in lines if "alpha run" in s}
    legend |= {s.split("beta run")[0].split()[-1] for s in lines if "beta run" in s}
    assert len(legend) == 2, legend
    assert spans and not any(getattr(sp.style, "color", None) for sp in spans)


async def test_compare_chart_legend_is_below_the_plot_at_80x24(runs_root):
    """The compare screen's overlaid validation curves: the run names sit under the x axis."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        app.open_compare(["alpha", "beta"])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.facts)
        await pilot.pause(0.2)
        chart = app.screen.query_one("#compare-chart", MetricChart)
        lines = [s.plain for s in chart.chart().lines(chart.content_size.width, chart.content_size.height)]
        axis = max(i for i, s in enumerate(lines) if "└" in s)
        legend = [i for i, s in enumerate(lines) if "alpha" in s and "beta" in s]
        assert legend and legend[0] > axis


async def _open_form_at_80x24(app, pilot) -> None:
    await runs_loaded(pilot)
    app.action_new_run()
    await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
    await pilot.pause(0.3)


async def test_new_run_form_fits_80x24(runs_root):
    """Catches a form taller than 24 rows (Start below the fold) and cut texts at 80 columns: every
    label, the name field's placeholder and the quick-validation checkbox are drawn whole."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        await _open_form_at_80x24(app, pilot)
        text = "\n".join(screen_lines(app))
        form = app.screen
        for label in form.query("#nr-body Label"):
            word = str(label.render()).strip()
            assert not word or re.search(rf"(^|\s){re.escape(word)}(\s|$)", text, re.M), word
        assert form.query_one("#f-name", Input).placeholder in text
        assert str(form.query_one("#f-quick", Checkbox).label) in text
        assert re.search(r"\bStart\b", "\n".join(screen_lines(app)[:-1])), text  # the button, not the footer key


async def test_every_choice_of_the_new_run_forms_selects_fits_one_row_at_80x24(runs_root):
    """Catches a choice whose label is wider than its select at 80 columns: choosing it wraps the
    select onto a second row and pushes the rest of the form down (precision's "bf16 (fp32 weights
    and sums)" did)."""
    from textual.widgets import Select

    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        await _open_form_at_80x24(app, pilot)
        for select in app.screen.query("#nr-body Select"):
            for label, value in list(select._options):
                select.value = value
                await pilot.pause()
                assert select.region.height == 1, (select.id, str(label), select.region)


async def test_q_stays_off_under_a_dialog_over_the_new_run_form(runs_root):
    """Catches the form's footer offering ``q Quit`` again while help or the confirm dialog is
    over it (q and ? were judged on the dialog, which has no text field)."""
    app = make_app(runs_root)
    async with app.run_test(size=SMALL) as pilot:
        await runs_loaded(pilot)
        app.action_new_run()
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.is_mounted)
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.is_modal)
        assert app.check_action("quit_key", ()) is False and app.check_action("help_key", ()) is False
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        app.pop_screen()
        await wait_for(pilot, lambda: not isinstance(app.screen, NewRunScreen))
        assert app.check_action("quit_key", ()) is True



async def test_a_finished_run_without_readable_metrics_says_so_instead_of_waiting(tmp_path):
    """A finished run whose metrics file is damaged drew "waiting for updates" and "waiting for the
    first epoch" — rows that will never come. Catches the live run's empty texts on a run that
    ended, and a damaged file that is not named."""
    root = tmp_path / "runs"
    run = make_run(root, "ended")
    (run.path / "metrics-1.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))  # an HDF5 signature, no file
    text = "\n".join(await run_view_lines(root, "ended"))
    assert "no updates recorded" in text and "no epoch recorded" in text, text
    assert "waiting for" not in text, [ln for ln in text.splitlines() if "waiting" in ln]
    assert "metrics-1.h5" in text.replace("\n", "").replace(" ", ""), text


async def test_escape_codes_in_a_status_message_or_log_are_shown_as_text(tmp_path):
    """A crashed run's status message and its train.log held escape sequences (clear the screen,
    set the terminal's title): the run view passed them to the terminal, which blanked half the
    screen (review). Catches any control character reaching the screen, and a message so long that
    it pushes the charts out of an 80×24 view."""
    import json

    root = tmp_path / "runs"
    run = make_run(root, "evil", state="crashed")
    status = json.loads((run.path / "status.json").read_text())
    status["message"] = "boom \x1b]0;HACKED\x07\x1b[2J\x1b[H after" + "W" * 5000
    (run.path / "status.json").write_text(json.dumps(status))
    (run.path / "train.log").write_bytes(b"epoch 1 \x1b[2J\x1b]0;pwned\x07 done\n" * 3)
    lines = await run_view_lines(root, "evil")
    text = "\n".join(lines)
    assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) <= 0x9F for c in text), [ln for ln in lines if "\ufffd" in ln]
    assert "boom" in text and "batch bound (per update)" in text
