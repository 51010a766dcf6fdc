"""The dashboard's classify view of a semi-supervised run (issue #11): what it shows is what
`bihm classify` computes, the work runs in a worker, unlabelled runs are refused, and it fits 80×24."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import DataTable

from bihm_app.runner.classify import classify_run, ranked
from bihm_app.tui.app import make_app
from bihm_app.tui.screens import classify as classify_screen
from bihm_app.tui.screens.classify import N_TILES, ClassifyScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.runs import RunsScreen
from bihm_app.tui.widgets.digit_gallery import DigitGallery, Tile
from tests.tui.semisup_fixture import make_semi_run, semi_arrays
from tests.tui.test_screens import SIZE, runs_loaded, select_row, wait_for


@pytest.fixture(scope="module")
def _semi_arrays():
    return semi_arrays()


@pytest.fixture
def semi_root(runs_root, _semi_arrays):
    """The dashboard's test runs (alpha, beta: unlabelled; gamma: corrupt) plus 'semi' (labelled)."""
    make_semi_run(runs_root, "semi", _semi_arrays)
    return runs_root


@pytest.fixture
def one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _summary(screen) -> str:
    return str(screen.query_one("#classify-summary").render())


def _check_against_runner(screen: ClassifyScreen, root: Path, split: str, K: int) -> None:
    """The numbers on screen are those of runner.classify for the same run, split, K and seed."""
    ref = classify_run("semi", root, split, K, seed=0, device="cpu")
    ev, got = ref.evaluation, screen.result.evaluation
    assert (screen.result.split, got.K) == (split, K)
    assert got.error.mean == ev.error.mean and got.error.se == ev.error.se
    assert f"error {100 * ev.error.mean:.2f} ± {100 * ev.error.se:.2f} %" in _summary(screen)
    assert f"{split} — {ev.n} points" in _summary(screen) and f"K = {K}, seed 0" in _summary(screen)
    table = screen.query_one("#classify-confusion", DataTable)
    conf = ev.confusion.tolist()
    for i in range(10):
        row = [str(c) for c in table.get_row_at(i)]
        assert row[:10] == [str(v) for v in conf[i]]
        e = ev.class_errors()[i]
        assert row[10] == f"{100 * e.mean:.1f}±{100 * e.se:.1f}"
    captions = [t.caption for t in screen.query_one("#classify-gallery", DigitGallery).tiles]
    y, pred = ev.y.numpy(), ev.predicted.numpy()
    assert captions == [f"{y[i]}→{pred[i]} {ref.confidence[i]:.2f}" for i in ranked(ref)[:N_TILES]]


async def test_classify_view_shows_what_bihm_classify_computes(semi_root, monkeypatch, one_thread):
    """Opened with `y` from the runs list, the view classifies in a worker thread (with a progress
    bar that reaches the number of points) and shows runner.classify's error ± SE, confusion
    matrix, per-class errors and most-confidently-wrong digits for the same seed and K; `s`
    switches to the validation split and `k` to the next K, each recomputed the same way.

    Catches: a screen that computes on the UI thread, uses another seed, K or split than it
    says, mislabels the confusion matrix (rows/columns swapped) or orders the digits otherwise."""
    monkeypatch.setattr(classify_screen, "DEFAULT_K", 1)
    calls = []

    def recording(*args, progress=None, on_start=None, **kwargs):
        seen = {"thread": threading.current_thread(), "total": None, "done": 0}
        calls.append(seen)

        def started(n):
            seen["total"] = n
            on_start(n)

        def advanced(m):
            seen["done"] += m
            progress(m)

        return classify_run(*args, progress=advanced, on_start=started, **kwargs)

    monkeypatch.setattr(classify_screen, "classify_run", recording)
    app = make_app(semi_root)
    async with app.run_test(size=SIZE) as pilot:
        runs = await runs_loaded(pilot)
        select_row(runs, "semi")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ClassifyScreen) and app.screen.shown >= 1)
        screen = app.screen
        assert calls[0]["thread"] is not threading.main_thread()
        assert calls[0]["total"] == calls[0]["done"] == 10_000
        assert not screen.query_one("#classify-progress").display
        _check_against_runner(screen, semi_root, "test", 1)

        await pilot.press("s")
        await wait_for(pilot, lambda: screen.shown >= 2)
        _check_against_runner(screen, semi_root, "valid", 1)
        await pilot.press("k")
        await wait_for(pilot, lambda: screen.shown >= 3)
        _check_against_runner(screen, semi_root, "valid", 10)
        await pilot.press("s")  # back to test at K = 10
        await wait_for(pilot, lambda: screen.shown >= 4)
        assert (screen.result.split, screen.result.evaluation.K) == ("test", 10)
        assert len(calls) == 4


async def test_a_confusion_cell_filters_the_digits(semi_root, monkeypatch, one_thread):
    """At 200×60 the matrix and the digits sit side by side; enter on cell (true 4, predicted 9)
    shows only those digits, most confident first, and the count in the title is the cell's; `a`
    shows every digit again (mistakes first); `w` writes the matrix and the digits as PNGs."""
    monkeypatch.setattr(classify_screen, "DEFAULT_K", 1)
    app = make_app(semi_root)
    async with app.run_test(size=(200, 60)) as pilot:
        await runs_loaded(pilot)
        app.push_screen(ClassifyScreen("semi"))
        await wait_for(pilot, lambda: isinstance(app.screen, ClassifyScreen) and app.screen.shown >= 1)
        screen = app.screen
        res = screen.result
        gallery = screen.query_one("#classify-gallery", DigitGallery)
        table = screen.query_one("#classify-confusion", DataTable)
        # the result is shown before the next layout pass sizes the table: wait for that pass
        await wait_for(pilot, lambda: table.region.width > 0 and gallery.region.width > 0)
        assert gallery.region.x >= table.region.right and gallery.region.y < table.region.bottom  # side by side
        assert gallery.region.right <= 200 and screen.query_one("#classify-right").region.height > 40
        wrong = [t.wrong for t in gallery.tiles]
        assert wrong == sorted(wrong, reverse=True) and wrong[0]  # mistakes first
        table.focus()
        table.move_cursor(row=4, column=9)
        await pilot.press("enter")
        await pilot.pause()
        n49 = int(res.evaluation.confusion[4, 9])
        assert n49 > 0 and screen.cell == (4, 9)
        assert {t.caption.split()[0] for t in gallery.tiles} == {"4→9"} and len(gallery.tiles) == min(n49, N_TILES)
        conf = [float(t.caption.split()[1]) for t in gallery.tiles]
        assert conf == sorted(conf, reverse=True)
        assert f"true 4, predicted 9: {n49} digits" in str(screen.query_one("#classify-gallery-title").render())
        await pilot.press("a")
        assert screen.cell == (None, None) and gallery.tiles[0].wrong and len(gallery.tiles) == N_TILES
        await pilot.press("w")
        await wait_for(pilot, lambda: len(screen.last_saved) == 2)
        assert [p.name for p in screen.last_saved] == ["classify-test-K1.png", "classify-test-K1-digits.png"]
        assert all(p.parent == semi_root / "semi" / "pictures" and p.stat().st_size > 0 for p in screen.last_saved)


async def test_classify_is_refused_for_a_run_without_labels(semi_root, monkeypatch):
    """`y` on an unsupervised run (runs list and run view) says in one notification, titled "refused"
    as every refusal (it read "error"), that it has no label layer and opens nothing; on a corrupt run it names the damage; the run view of the
    semi-supervised run opens the classify view with the same key."""
    monkeypatch.setattr(classify_screen, "DEFAULT_K", 1)
    app = make_app(semi_root)

    def said(text: str) -> bool:
        return any(text in str(n.message) for n in app._notifications)

    async with app.run_test(size=SIZE) as pilot:
        runs = await runs_loaded(pilot)
        select_row(runs, "alpha")
        await pilot.press("y")
        await wait_for(pilot, lambda: said("run alpha has no label layer"))
        assert any(n.title == "refused" for n in app._notifications if "no label layer" in str(n.message))
        await pilot.pause(0.2)
        assert app.screen is runs and not any(isinstance(s, ClassifyScreen) for s in app.screen_stack)
        select_row(runs, "gamma")
        await pilot.press("y")
        await wait_for(pilot, lambda: said("corrupt"))
        assert app.screen is runs
        app.open_run("beta")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: said("run beta has no label layer"))
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunScreen)
        app.pop_screen()
        app.open_run("semi")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ClassifyScreen) and app.screen.shown >= 1)
        assert app.screen.run_name == "semi"


def test_snapshot_classify_at_80x24(semi_root, monkeypatch, snap_compare, one_thread):
    """The view at 80×24: summary, the whole confusion matrix with per-class errors, the start of
    the digits and the footer, nothing cut off sideways."""
    monkeypatch.chdir(semi_root.parent)
    app = make_app(Path("runs"), cursor_blink=False)

    async def before(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.refreshes >= 1)
        app.push_screen(ClassifyScreen("semi", K=1))
        await wait_for(pilot, lambda: isinstance(app.screen, ClassifyScreen) and app.screen.shown >= 1)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.2)
        for widget in ("#classify-summary", "#classify-confusion", "#classify-gallery"):
            assert app.screen.query_one(widget).region.right <= 80, widget

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_gallery_columns_follow_the_width():
    """A 28×28 digit is 14 braille cells wide: with 2-cell gaps 4 fit in 76 columns (80 less the
    padding and the scrollbar), 5 in 78, 8 in 126, and always at least one."""
    g = DigitGallery()
    g.set_tiles([Tile(np.zeros((28, 28)), "1→7 0.93", True)] * 10)
    assert g.tile_size() == (14, 8)
    assert g.columns(76) == 4 and g.columns(78) == 5 and g.columns(126) == 8 and g.columns(5) == 1
