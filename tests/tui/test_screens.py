"""Pilot tests of every dashboard screen and action, on a temporary runs folder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
from textual.widgets import Button, DataTable, Input, Select

from bihm_app.runner.pictures import INPAINTING, SAMPLING
from bihm_app.tui import launcher
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.compare import CompareScreen
from bihm_app.tui.screens.help import HelpScreen
from bihm_app.tui.screens.inpaint import InpaintScreen
from bihm_app.tui.screens.layers import LayersScreen
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.runs import RunsScreen
from bihm_app.tui.screens.samples import SamplesScreen
from bihm_app.tui.widgets.bitmap import BitmapImage
from bihm_app.tui.widgets.metric_chart import MetricChart
from tests.tui.runs_fixture import set_status, write_metrics

SIZE = (100, 32)


async def wait_for(pilot, cond, timeout: float = 20.0) -> None:
    """Let the app run until ``cond()`` holds (workers finish in threads)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.01)


async def runs_loaded(pilot) -> RunsScreen:
    screen = pilot.app.screen
    assert isinstance(screen, RunsScreen)
    await wait_for(pilot, lambda: screen.refreshes >= 1)
    return screen


def select_row(screen: RunsScreen, name: str) -> None:
    table = screen.query_one("#runs-table", DataTable)
    names = [str(k.value) for k in table.rows]
    table.move_cursor(row=names.index(name))


# -- runs ------------------------------------------------------------------------------------------
async def test_runs_table_lists_runs_and_shows_a_corrupt_run_as_corrupt(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(120, SIZE[1])) as pilot:  # wide enough for every column (trend too)
        screen = await runs_loaded(pilot)
        table = screen.query_one("#runs-table", DataTable)
        assert [str(k.value) for k in table.rows] == ["alpha", "beta", "gamma"]
        assert str(table.get_cell("gamma", "status")) == "corrupt"
        assert str(table.get_cell("alpha", "status")) == "finished"
        assert str(table.get_cell("beta", "layers")) == "10,5,3"
        assert table.get_cell("alpha", "trend").strip()  # a sparkline of the validation curve
        select_row(screen, "gamma")
        await pilot.pause()
        assert "corrupt" in str(screen.query_one("#runs-detail").render())


async def test_runs_table_picks_up_a_new_run_on_refresh(runs_root):
    from tests.tui.runs_fixture import make_run

    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        make_run(runs_root, "delta", epochs=1)
        n = screen.refreshes
        await pilot.press("f5")
        await wait_for(pilot, lambda: screen.refreshes > n)
        assert "delta" in [str(k.value) for k in screen.query_one("#runs-table", DataTable).rows]


async def test_empty_runs_folder_says_how_to_start(tmp_path):
    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        assert "No runs" in str(screen.query_one("#runs-empty").render())
        await pilot.press("s")  # no run selected: a warning, no crash
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


# -- run (live) -------------------------------------------------------------------------------------
async def test_run_screen_draws_curves_from_the_metrics_file(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "beta")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        run = app.screen
        assert run.series.step == 6 * 25
        assert len(run.series.epochs) == 6
        epochs_chart = run.query_one("#chart-epochs", MetricChart)
        assert [c.label for c in epochs_chart.curves] == ["log p~*", "log p"]
        await pilot.press("v")  # 2 log Z has its own view (another scale)
        assert [c.label for c in epochs_chart.curves] == ["2 log Z"] and epochs_chart.curves[0].se[0] == pytest.approx(0.3)
        await pilot.press("v")
        assert "K" in str(run.query_one("#run-params").render())
        batch = run.query_one("#chart-batch", MetricChart).curves[0]
        await pilot.press("m")  # smoothed view: same steps, smoother values
        smooth = run.query_one("#chart-batch", MetricChart).curves[0]
        assert smooth.label.startswith("smoothed") and np.std(np.diff(smooth.y)) < np.std(np.diff(batch.y))
        await pilot.press("z")  # zoom to the last 50 epochs (all six here)
        await pilot.press("z", "z")  # last 10, then last 3 epochs
        assert run.query_one("#chart-epochs", MetricChart).curves[0].x.min() >= 6 - 3
        assert run.query_one("#stop", Button).disabled  # finished: nothing to stop
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_run_screen_follows_a_growing_metrics_file(runs_root):
    """A writer appends while the screen is open (an SWMR tail, as for a run started from the CLI)."""
    from bihm_app.store.runs import RunFolder

    run = RunFolder(runs_root / "live")
    run.path.mkdir()
    set_status(run, "running")  # our own pid: alive
    writer = write_metrics(run.path / "metrics-1.h5", {"model": {"layers": [8, 4]}, "train": {"K": 3}}, 1, 10, close=False)
    app = make_app(runs_root)
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.open_run("live")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.series is not None
                           and app.screen.series.step == 10)
            screen = app.screen
            before = screen.redraws
            for step in range(11, 31):
                writer.log_update(step, 1, float(step), -150.0)
            writer.log_epoch({"epoch": 2, "step": 30, "valid_log_ptilde": -140.0, "valid_log_ptilde_se": 1.0})
            await wait_for(pilot, lambda: screen.series.step == 30 and screen.redraws > before)
            assert screen.series.best_valid()[0] == pytest.approx(-140.0)
            assert not screen.query_one("#stop", Button).disabled
            # redraws happen on the timer only when rows arrived: idle polls do not redraw
            idle = screen.redraws
            await pilot.pause(1.0)
            assert screen.redraws == idle
    finally:
        writer.close()


async def test_run_screen_for_a_missing_run_shows_an_error(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_run("no-such-run")
        await pilot.pause(0.2)
        assert "no run named" in str(app.screen.query_one("#run-info").render())


# -- stop / resume ----------------------------------------------------------------------------------
async def test_stop_sends_sigint_to_the_running_process(runs_root):
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal,sys,time\n"
         "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == b"ready"
        from bihm_app.store.runs import RunFolder

        set_status(RunFolder(runs_root / "alpha"), "running", pid=child.pid)
        app = make_app(runs_root)
        async with app.run_test(size=SIZE) as pilot:
            screen = await runs_loaded(pilot)
            select_row(screen, "alpha")
            await pilot.press("x")
            assert child.wait(timeout=10) == 130
    finally:
        if child.poll() is None:
            child.kill()


async def test_stop_of_a_finished_run_is_refused_with_a_notification(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "alpha")
        await pilot.press("x")
        await pilot.pause()
        assert any("not running" in n.message for n in app._notifications)


async def test_resume_launches_the_train_command_as_a_child(runs_root, monkeypatch):
    calls = []

    class FakeProc:
        pid = 4242

        def poll(self):
            return None

    monkeypatch.setattr(launcher, "spawn", lambda argv, log: calls.append(argv) or FakeProc())
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "beta")
        await pilot.press("r")
        await pilot.pause()
    assert calls and calls[0][1:] == ["-m", "bihm_app", "train", "--resume", "beta", "--runs-dir", str(runs_root), "--quiet"]


# -- pictures ---------------------------------------------------------------------------------------
async def test_samples_screen_draws_regenerates_switches_method_and_saves_png(runs_root, monkeypatch):
    """Catches a samples screen that draws the wrong grid, redraws the same picture for a new seed,
    ignores the method key or the half-block key, or saves no PNG into the run's pictures folder.
    (Short Gibbs chains: the chain itself is the engine's and tests/unit's business.)"""
    monkeypatch.setattr("bihm_app.tui.screens.samples.SAMPLING", replace(SAMPLING, steps=5))
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "alpha")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.generated >= 1)
        s = app.screen
        img = s.query_one("#picture", BitmapImage)
        first = img.grid.copy()
        assert img.grid.shape == (4 * 30 + 2, 4 * 30 + 2)  # 4x4 digits of 28 px, 2 px gaps
        await pilot.press("g")
        await wait_for(pilot, lambda: s.generated >= 2)
        assert s.seed == 1 and not np.array_equal(first, img.grid)
        await pilot.press("m")
        await wait_for(pilot, lambda: s.generated >= 3, timeout=60)
        assert s.method == "resample"  # from the default, gibbs
        await pilot.press("b")
        assert img.mode == "halfblock"
        await pilot.press("w")
        await wait_for(pilot, lambda: s.last_saved is not None)
        assert s.last_saved.exists() and s.last_saved.parent == runs_root / "alpha" / "pictures"


async def test_samples_of_a_corrupt_run_are_refused(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "gamma")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert any("corrupt" in n.message for n in app._notifications)


async def test_pictures_of_a_run_without_a_checkpoint_are_refused_before_a_screen_opens(runs_root):
    """A run folder with no checkpoint yet (a training in its first epoch, a launch that died): the
    runs list opened the samples, inpainting or layers screen, which then showed "is corrupt, no
    readable checkpoint". Catches that: `s`, `i` and `l` stay on the list with one notification
    that says there is no checkpoint yet (not that the run is corrupt), and the detail line does
    not call the run corrupt."""
    from bihm_app.store.runs import new_run

    new_run(runs_root, "fresh").write_status("stopped", epoch=0)
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "fresh")
        for key in ("s", "i", "l"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, RunsScreen), key
        said = [n.message for n in app._notifications]  # (the same message again is shown once)
        assert any("run fresh has no checkpoint yet" in m for m in said) and not any("corrupt" in m for m in said), said
        assert "corrupt" not in str(screen.query_one("#runs-detail").render())


async def test_a_run_still_starting_is_not_said_to_have_stopped(runs_root):
    """A run launched a moment ago is "created" while its process loads the data and builds the
    model (seconds for MNIST): the run view said "no checkpoint: it stopped before its first
    save" about it, as if it had died. Catches that: a live "created" run, like a running one,
    gets no such line; once its process is gone (read as crashed) the line is shown."""
    from bihm_app.store.runs import new_run

    async def run_view_info() -> str:
        app = make_app(runs_root)
        async with app.run_test(size=SIZE) as pilot:
            await runs_loaded(pilot)
            app.open_run("starting")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
            await pilot.pause(0.2)
            return " ".join(str(app.screen.query_one("#run-info").render()).split())

    run = new_run(runs_root, "starting")  # status "created", our own (live) pid
    info = await run_view_info()
    assert "created" in info and "stopped before" not in info, info
    run.write_status("created", pid=2**22 + 12345)  # no such process: it died before its first save
    info = await run_view_info()
    assert "stopped before its first save" in info, info


async def test_the_detail_line_of_a_run_with_a_damaged_status_and_no_checkpoint_names_the_status(runs_root):
    """A run folder whose status.json is unreadable and which has no checkpoint: the runs list's
    detail line said "X is corrupt: it has no checkpoint yet", hiding what is damaged (a missing
    checkpoint is not damage). Catches that: the line names status.json and its problem."""
    bad = runs_root / "badstat"
    bad.mkdir()
    (bad / "status.json").write_text("{garbage")
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "badstat")
        await pilot.pause()
        detail = " ".join(str(screen.query_one("#runs-detail").render()).split())
        assert "status.json" in detail and "unreadable" in detail, detail


async def test_inpaint_screen_animates_the_chain(runs_root, monkeypatch):
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.FRAME_S", 0.01)
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=5))
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_inpaint("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, InpaintScreen) and app.screen.frames_shown >= 3)
        s = app.screen
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert s.sweep == 5 and s.frames_shown == 6
        grid = s.query_one("#picture", BitmapImage).grid
        assert grid.shape == (2 * 30 + 2, 3 * 30 + 2)  # original, input, 4 chains
        # the known (top) half of every chain equals the original image
        orig = grid[2:30, 2:30]
        chain = grid[32:60, 2:30]
        assert np.array_equal(chain[:14] > 0.5, orig[:14] > 0.5)
        await pilot.press("m")  # mask -> top: restarts the chain
        await wait_for(pilot, lambda: s.mask == "top" and s.frames_shown >= 1)
        s.query_one("#inpaint-index", Input).value = "x"
        s.query_one("#inpaint-index", Input).focus()
        await pilot.press("enter")
        await pilot.pause()
        assert any("not a number" in n.message for n in app._notifications)


async def test_inpaint_index_out_of_range_is_a_notification(runs_root, monkeypatch):
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=2))
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_inpaint("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, InpaintScreen) and app.screen.model is not None)
        await app.workers.wait_for_complete()
        s = app.screen
        s.index = 10**6
        s.action_run_chain()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("does not exist" in n.message for n in app._notifications)


async def test_layers_screen_switches_layers_within_the_model(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_layers("beta")  # three latent layers
        await wait_for(pilot, lambda: isinstance(app.screen, LayersScreen) and app.screen.generated >= 1)
        s = app.screen
        await pilot.press("right_square_bracket", "right_square_bracket")
        await wait_for(pilot, lambda: s.generated >= 3)
        assert s.layer_index == 3
        await pilot.press("right_square_bracket")  # no layer 4: a warning
        await pilot.pause()
        assert s.layer_index == 3 and any("layers 1" in n.message for n in app._notifications)


# -- compare ----------------------------------------------------------------------------------------
def metric_cell(screen: CompareScreen, run: str, heading: str) -> str:
    """A cell of the compare screen's metrics table, whichever way round it is (a row or a column per run)."""
    from bihm_app.tui.screens.compare import HEADINGS

    table = screen.query_one("#compare-metrics", DataTable)
    r, c = [f.name for f in screen.facts].index(run), HEADINGS.index(heading)
    return str(table.get_row_at(c)[r + 1] if screen.per_run_columns else table.get_row_at(r)[c + 1])


async def test_compare_highlights_config_differences_and_shows_errors(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        for name in ("alpha", "beta"):
            select_row(screen, name)
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.facts)
        s = app.screen
        assert "±" in metric_cell(s, "alpha", "log p~*")
        config = s.query_one("#compare-config", DataTable)
        keys = [str(config.get_row_at(i)[0]) for i in range(config.row_count)]
        assert {"model.layers", "train.K", "train.lr"} <= set(keys) and "data" not in keys
        await pilot.press("a")  # all keys, equal ones too
        assert "data" in [str(config.get_row_at(i)[0]) for i in range(config.row_count)]
        assert len(s.query_one("#compare-chart", MetricChart).curves) == 2


async def test_compare_shows_the_cached_test_estimate_and_writes_a_report(runs_root, monkeypatch):
    """Catches a compare screen that ignores `bihm eval`'s cached results, shows a stale cache, or
    whose report key writes nothing."""
    from PIL import Image

    from bihm_app.runner import report
    from bihm_app.runner.evaluation import EvalCache, write_cache
    from bihm_app.store.checkpoint import read_meta

    meta = read_meta(runs_root / "alpha" / "best.h5")
    cache = EvalCache("test", "bmnist", "best.h5", meta["progress"]["epoch"], meta["progress"]["step"])
    cache.add_estimate({"K": 1000, "n": 10000, "log_ptilde": -90.0, "log_ptilde_se": 0.3, "log_p": -89.0,
                        "log_p_se": 0.3, "ess": 0.1, "ess_se": 0.01})  # fmt: skip
    cache.add_z({"samples": 1000000, "inner": 1, "mean": -0.5, "se": 0.4})
    write_cache(runs_root / "alpha", cache)
    stale = EvalCache("test", "bmnist", "best.h5", 999, 99999, estimates=list(cache.estimates))
    write_cache(runs_root / "beta", stale)  # another checkpoint's numbers: must not be shown
    # short Gibbs chains for the report's pictures (what the pictures show is tests/runner/test_report.py's)
    monkeypatch.setattr(report, "ReportOptions", partial(report.ReportOptions, gibbs_steps=2, K_pictures=10))
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        app.open_compare(["alpha", "beta"])
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.facts)
        s = app.screen
        assert metric_cell(s, "alpha", "test (cached)") == "-89.50 ± 0.50 p* K=1000"  # −90.0 − (−0.5); √(0.3² + 0.4²)
        assert metric_cell(s, "beta", "test (cached)") == "—"
        await pilot.press("r")
        await wait_for(pilot, lambda: any("report written" in n.message for n in app._notifications), timeout=60)
    (report,) = (runs_root.parent / "reports").glob("compare-*/report.md")
    text = report.read_text()
    assert "-89.50 ± 0.50" in text and "## alpha" in text and "## beta" in text
    for png in report.parent.rglob("*.png"):
        with Image.open(png) as im:
            im.verify()
    assert (report.parent / "alpha" / "samples.png").exists() and (report.parent / "compare-valid.png").exists()


# -- new run ----------------------------------------------------------------------------------------
async def test_new_run_form_launches_the_child_and_opens_the_run(runs_root, monkeypatch):
    calls = []

    class FakeProc:
        pid = 4242

        def poll(self):
            return None

    monkeypatch.setattr(launcher, "spawn", lambda argv, log: calls.append(argv) or FakeProc())
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        await wait_for(pilot, lambda: len(form.query_one("#f-device", Select)._options) > 1)
        form.query_one("#f-layers", Input).value = "20,10"
        form.query_one("#f-epochs", Input).value = "3"
        form.query_one("#f-name", Input).value = "fresh"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        assert app.screen.run_name == "fresh"
    argv = calls[0]
    assert argv[3] == "train" and argv[argv.index("--layers") + 1] == "20,10"
    assert argv[argv.index("--epochs") + 1] == "3" and argv[argv.index("--name") + 1] == "fresh"
    assert "--valid-max" in argv and argv[argv.index("--runs-dir") + 1] == str(runs_root)


async def test_new_run_form_rejects_bad_input_with_one_line(runs_root, monkeypatch):
    monkeypatch.setattr(launcher, "spawn", lambda argv, log: pytest.fail("must not start"))
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        app.action_new_run()
        await pilot.pause()
        form = app.screen
        form.query_one("#f-layers", Input).value = "20,x"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen)
        form.query_one("#f-layers", Input).value = "20"
        form.query_one("#f-name", Input).value = "alpha"  # exists
        await pilot.press("ctrl+s")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("layers" in m for m in messages) and any("already exists" in m for m in messages)


# -- help, palette, theme ---------------------------------------------------------------------------
async def test_help_screen_lists_the_keys_of_the_screen_below(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        assert "Start a new training run" in text and "Quit" in text
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


async def test_command_palette_offers_every_screen_action(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        titles = [c.title for c in app.get_system_commands(screen)]
        for b in RunsScreen.BINDINGS:
            assert any(t.startswith(b.description) for t in titles), b.description
        assert "New run" in titles and "Help" in titles
        cmd = next(c for c in app.get_system_commands(screen) if c.title == "New run")
        cmd.callback()
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.is_mounted)
        await pilot.pause()


async def test_theme_toggle_switches_light_and_dark(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark != dark


async def test_small_terminal_80x24_shows_every_screen(runs_root):
    app = make_app(runs_root)
    async with app.run_test(size=(80, 24)) as pilot:
        await runs_loaded(pilot)
        app.open_run("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        for chart in app.screen.query(MetricChart):
            assert chart.size.height >= 5 and chart.size.width >= 30


async def test_a_run_without_checkpoint_shows_its_config_from_the_metrics_file(runs_root):
    from bihm_app.store.runs import RunFolder

    run = RunFolder(runs_root / "fresh")
    run.path.mkdir()
    set_status(run, "running")
    cfg = {"data": "bmnist", "model": {"n_visible": 784, "layers": [20, 10]}, "train": {"K": 3}}
    write_metrics(run.path / "metrics-1.h5", cfg, 1, 5)
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        table = screen.query_one("#runs-table", DataTable)
        assert str(table.get_cell("fresh", "data")) == "bmnist"
        assert str(table.get_cell("fresh", "layers")) == "20,10"
        assert str(table.get_cell("fresh", "status")) == "running"
