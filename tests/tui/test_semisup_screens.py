"""The dashboard and semi-supervised runs: the validation error curve (± 2 SE) in the run view,
and the label options of the new-run form."""

from __future__ import annotations

import math

import pytest
from textual.widgets import Input, Select

from bihm_app.store.metrics import MetricsWriter
from bihm_app.store.runs import RunFolder
from bihm_app.tui import launcher
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.widgets.metric_chart import MetricChart
from tests.tui.runs_fixture import epoch_row, set_status
from tests.tui.test_screens import SIZE, runs_loaded, wait_for


def _semi_run(root, name="semi"):
    run = RunFolder(root / name)
    run.path.mkdir()
    config = {"model": {"n_visible": 784, "layers": [8, 4], "labels": {"n_classes": 10, "placement": "bottom"}},
              "train": {"K": 10}, "semisup": {"n_labels": 100}}  # fmt: skip
    with MetricsWriter(run.path / "metrics-1.h5", {"run": name, "config": config, "start_step": 0}) as w:
        for e in range(1, 5):
            w.log_update(e * 10, e - 1, float(e), -150.0)
            w.log_epoch(epoch_row(e, e * 10) | {"valid_error": 0.5 / e, "valid_error_se": 0.01, "valid_log_py": -1.0 / e,
                                                "valid_log_py_se": 0.02})  # fmt: skip
    set_status(run, "finished", epoch=4, step=40)
    return run


async def test_run_view_shows_the_validation_error_curve_of_a_semisup_run(runs_root):
    """A semi-supervised run opens on its error curve in percent with ± 2 SE bands and the best
    error in the info line; `v` still reaches the likelihood bounds and 2 log Z."""
    _semi_run(runs_root)
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_run("semi")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        screen = app.screen
        chart = screen.query_one("#chart-epochs", MetricChart)
        assert [c.label for c in chart.curves] == ["error %"]
        assert chart.curves[0].y.tolist() == pytest.approx([50.0, 25.0, 50 / 3, 12.5])
        assert chart.curves[0].se[0] == pytest.approx(1.0)
        assert "best error 12.50 ± 1.00 %" in str(screen.query_one("#run-info").render())
        await pilot.press("v")
        assert [c.label for c in chart.curves] == ["2 log Z"]
        await pilot.press("v")
        assert [c.label for c in chart.curves] == ["log p~*", "log p"]
        await pilot.press("v")
        assert [c.label for c in chart.curves] == ["error %"]


async def test_new_run_form_passes_the_label_options(runs_root, monkeypatch):
    """Labels, γ, placement, proposal and precision from the form reach `bihm train`; a bad γ is
    refused, and so is bf16 with labels (the semi-supervised trainer runs in fp32: `bihm train`
    refuses it, the form says so next to the field)."""
    calls = []

    class FakeProc:
        pid = 4242

        def poll(self):
            return None

    monkeypatch.setattr(launcher, "spawn", lambda argv, log: calls.append(argv) or FakeProc())
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.action_new_run()
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.query("#f-labels"))
        form = app.screen
        form.query_one("#f-name", Input).value = "semi"
        form.query_one("#f-labels", Input).value = "1000"
        form.query_one("#f-gamma", Input).value = "3"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not calls and isinstance(app.screen, NewRunScreen)
        form.query_one("#f-gamma", Input).value = "0.5"
        form.query_one("#f-label-at", Select).value = "bottom"
        form.query_one("#f-label-proposal", Select).value = "mixed"
        form.query_one("#f-precision", Select).value = "bf16"  # semi-supervised runs train in fp32: refused
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not calls and "fp32 only with labelled points" in str(form.query_one("#m-precision").render())
        form.query_one("#f-precision", Select).value = "fp32"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(calls))
    argv = calls[0]
    assert argv[argv.index("--precision") + 1] == "fp32"
    bf16 = launcher.NewRunSpec(precision="bf16").argv(runs_root, "x")  # unsupervised: bf16 goes through
    assert bf16[bf16.index("--precision") + 1] == "bf16" and not launcher.NewRunSpec(precision="bf16").problems()
    assert argv[argv.index("--labels") + 1] == "1000" and math.isclose(float(argv[argv.index("--gamma") + 1]), 0.5)
    assert argv[argv.index("--label-at") + 1] == "bottom" and argv[argv.index("--label-proposal") + 1] == "mixed"
    assert "--labels" not in launcher.NewRunSpec().argv(runs_root, "x")  # unsupervised by default


def test_the_run_views_best_log_ptilde_is_that_of_the_epoch_best_h5_holds(runs_root):
    """A semi-supervised run keeps the epoch of its lowest validation error (epoch 1 here) while its
    log p̃* peaks later (epoch 2): the run view's "best log p~*" must be epoch 1's, as on the runs
    list and the compare views. Catches the view taking the highest log p̃* of any epoch."""
    from bihm_app.tui.widgets.run_metrics import RunSeries

    run = RunFolder(runs_root / "peaks")
    run.path.mkdir()
    rows = [(-130.0, 0.151), (-128.7, 0.160), (-129.5, 0.170)]
    with MetricsWriter(run.path / "metrics-1.h5", {"run": "peaks", "config": {}, "start_step": 0}) as w:
        for e, (lpt, err) in enumerate(rows, start=1):
            w.log_update(e * 10, e - 1, float(e), -150.0)
            w.log_epoch(epoch_row(e, e * 10) | {"valid_log_ptilde": lpt, "valid_log_ptilde_se": 0.5,
                                                "valid_error": err, "valid_error_se": 0.01})  # fmt: skip
    series = RunSeries(run.path)
    try:
        series.poll()
        assert series.best_valid() == (-130.0, 0.5)
    finally:
        series.close()
