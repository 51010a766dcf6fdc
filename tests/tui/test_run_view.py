"""The run view: a semi-supervised run's label settings and a log for runs started from the shell,
and the epoch chart's markers and axis."""

from __future__ import annotations

from textual.widgets import Static

from bihm_app.tui.app import make_app
from bihm_app.tui.screens.run import RunScreen
from tests.tui.test_screens import SIZE, runs_loaded, wait_for
from tests.tui.test_semisup_screens import _semi_run


async def test_semisup_run_view_shows_label_settings_and_a_log_from_the_metrics_file(runs_root):
    """Catches a semi-supervised run's hyper-parameters without its label settings (labels,
    label-at, proposal, gamma), and a finished run started from the command line (no train.log)
    whose log panel says "(no log yet)" although its metrics file records every epoch."""
    _semi_run(runs_root)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await runs_loaded(pilot)
        app.open_run("semi")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        await pilot.pause(0.3)
        params = str(app.screen.query_one("#run-params", Static).render())
        log = str(app.screen.query_one("#run-log", Static).render())
    assert "labels 100" in params and "label at bottom" in params, params
    assert "no log yet" not in log, log
    assert "epoch 4: log p~*" in log and "error 12.50 %" in log and "run finished" in log, log


def _marker_rows(lines, marker: str) -> list[int]:
    return [r for r, line in enumerate(lines) if marker in str(line)]


def test_the_higher_of_two_markers_in_one_cell_is_drawn_above():
    """Catches the epoch chart drawing log p's ■ below log p̃*'s ● although log p (−195.20) is
    higher than log p̃* (−195.76): when both fall into one cell the second marker moved to the side
    of its value within the cell, not of its value against the other marker's. Swept over shifts
    so the two values land in every position within a cell."""
    import numpy as np

    from bihm_app.render.chart import MARKERS, LineChart

    x = np.array([1.0, 2.0, 3.0])
    for shift in np.linspace(0.0, 4.0, 41):
        ptilde = np.array([-240.0, -212.0, -195.76]) + shift
        logp = np.array([-239.4, -211.5, -195.20]) + shift
        lines = LineChart({"log p~*": (x, ptilde), "log p": (x, logp)}, x_label="epoch").lines(60, 16)
        last = max(str(line).rfind(MARKERS[0]) for line in lines)  # the column of epoch 3
        at = {m: [r for r, line in enumerate(lines) if str(line)[last - 1 : last + 2].count(m)] for m in MARKERS[:2]}
        assert min(at[MARKERS[1]]) <= min(at[MARKERS[0]]), (shift, "\n".join(map(str, lines)))


def test_the_epoch_axis_keeps_the_last_ticks_number():
    """Catches the x-axis title "epoch" written over the last tick's label (epoch 3 unlabelled):
    every tick keeps its number and the title is still on the axis row."""
    import numpy as np

    from bihm_app.render.chart import LineChart

    x = np.array([1.0, 2.0, 3.0])
    for width in (40, 60, 100):
        lines = [str(line) for line in LineChart({"a": (x, -x)}, x_label="epoch").lines(width, 12)]
        axis = next(r for r, line in enumerate(lines) if "└" in line)
        labels = lines[axis + 1].split()
        assert [t for t in labels if t.isdigit()] == ["1", "2", "3"] and "epoch" in labels, lines[axis:]


async def test_a_run_with_damaged_metrics_shows_the_checkpoints_epochs_and_says_so(runs_root):
    """A finished run whose metrics file is garbage: the runs table shows its checkpoint's epoch
    count (4), its best score and "damaged", but the run view said "0 epochs done · step 0" and "best
    log p~* —". Catches a run view that takes the empty metrics' count over the checkpoint's, and one
    whose info line lacks the table's word ("damaged") or its warning about the metrics file."""
    from bihm_app.runner.summaries import TrendCache, load_rows
    from tests.tui.runs_fixture import make_run

    run = make_run(runs_root, "broken", epochs=4)
    (run.path / "metrics-1.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    row = next(r for r in load_rows(runs_root, TrendCache()) if r.summary.name == "broken")
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_run("broken")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        await pilot.pause(0.3)
        info = " ".join(str(app.screen.query_one("#run-info", Static).render()).split())
    assert "4 epochs done" in info and "0 epochs done" not in info and "0/100" not in info, info
    assert row.metrics_problem and " ".join(row.metrics_problem.split()) in info, (row.metrics_problem, info)
    assert "broken finished damaged 4 epochs" in info  # the table's status word, beside the state
    assert f"best log p~* {row.summary.best_valid:.2f} (checkpoint)" in info  # the table's best, not "—"
