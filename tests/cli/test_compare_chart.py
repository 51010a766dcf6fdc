"""`bihm ckpt compare`'s chart draws every finite point of every run inside its axes: all epochs of
each run (best.h5 stops at the best epoch; the curves come from checkpoint.h5) and a y axis that
spans all of them."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from bihm_app.cli import ckpt_cmd
from bihm_app.cli.common import runs_root
from bihm_app.render.chart import LineChart, even_ticks
from bihm_app.runner.checkpoints import comparison
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import new_run
from tests.store.helpers import make_arrays, make_meta

runner = CliRunner()
#: The review's runs: "worse" peaked at epoch 1 (its best.h5 holds epoch 1 only), "better" improved.
WORSE = [-155.8, -159.6, -162.1]
BETTER = [-155.5, -138.5, -131.3]


def _meta(values: list[float], best_epoch: int) -> dict:
    meta = make_meta(epoch=len(values), step=40 * len(values))
    meta["progress"]["best_epoch"] = best_epoch
    n = len(values)
    meta["history"] = {"epoch": list(range(1, n + 1)), "valid_log_ptilde": values, "valid_log_ptilde_se": [0.4] * n,
                       "valid_log_p": [v + 0.3 for v in values], "valid_log_p_se": [0.4] * n}  # fmt: skip
    return meta


def _cut(meta: dict, epochs: int) -> dict:
    """The meta best.h5 got when it was written at ``epochs``."""
    out = dict(meta, history={k: v[:epochs] for k, v in meta["history"].items()})
    out["progress"] = dict(meta["progress"], epoch=epochs, step=40 * epochs)
    return out


@pytest.fixture
def two_runs():
    root = runs_root()
    for name, values, best in (("worse", WORSE, 1), ("better", BETTER, 3)):
        run = new_run(root, name)
        meta = _meta(values, best)
        save_checkpoint(run.checkpoint_path, make_arrays(), meta)
        save_checkpoint(run.best_path, make_arrays(), _cut(meta, best))
        run.write_status("finished", epoch=len(values))
    return root


def test_the_chart_has_every_epoch_of_each_run(two_runs):
    """Catches the bug of the review: compared by their best.h5, the run that peaked at epoch 1
    showed one point; its values −159.6 and −162.1 (epochs 2, 3) were missing from the chart while
    the other run's (around −131) were drawn."""
    res = runner.invoke(ckpt_cmd.app, ["compare", "worse", "better"])
    assert res.exit_code == 0, res.output
    plot = [ln for ln in res.stdout.splitlines() if re.match(r"^\s*-?[\d.]*\s+[┤│]", ln)]  # the chart's rows
    assert sum(ln.count("●") for ln in plot) == 3, "\n".join(plot)  # a marker on each of worse's 3 epochs
    assert sum(ln.count("■") for ln in plot) == 3, "\n".join(plot)
    assert "every epoch, from checkpoint.h5" in res.stdout

    from bihm_app.cli.ckpt_compare import chart_series

    doc = comparison([two_runs / "worse" / "best.h5", two_runs / "better" / "best.h5"])
    series, bands, extended = chart_series(doc["runs"], "valid_log_ptilde")
    assert series["worse"] == ([1.0, 2.0, 3.0], WORSE) and series["better"] == ([1.0, 2.0, 3.0], BETTER)
    assert len(bands["worse"]) == 3 and extended == ["worse"]
    # the tables still compare at each run's best epoch
    assert doc["runs"][0]["metrics"]["valid_log_ptilde"]["value"] == WORSE[0]


@pytest.mark.parametrize("height", [6, 8, 12, 16, 24])
def test_the_y_axis_spans_every_finite_point_and_band(height):
    """Catches a y axis that cuts off points, of the review's values or of random ones (heights
    6–24, gaps, bands). It pins what the chart promises: on main the y range was not what lost the
    review's points (their best.h5 lacked them, test above), but nothing checked it."""
    rng = np.random.default_rng(height)
    cases = [({"worse": ([1, 2, 3], WORSE), "better": ([1, 2, 3], BETTER)}, {"worse": [0.8] * 3, "better": [0.8] * 3})]
    for _ in range(30):
        n = int(rng.integers(1, 30))
        ys = [rng.normal(rng.normal(-100, 80), 10 ** rng.uniform(-3, 2), n).tolist() for _ in range(2)]
        ys[0][0] = math.nan  # a gap
        cases.append(({"a": (list(range(n)), ys[0]), "b": (list(range(n)), ys[1])}, {"a": np.abs(rng.normal(0, 1, n)).tolist()}))
    for series, bands in cases:
        chart = LineChart(series, height=height, bands=bands)
        rows = max(2, height - 2 - 2)  # the title-less chart: x axis (2 lines) and one legend line
        axis = chart.y_axis(rows)
        values = [np.asarray(y, float) for _, y in series.values()]
        values += [np.asarray(series[k][1], float) + s * np.asarray(b) for k, b in bands.items() for s in (-1, 1)]
        finite = np.concatenate([v[np.isfinite(v)] for v in values])
        assert axis.bottom <= finite.min() + 1e-9 * abs(finite.min()) and axis.top >= finite.max() - 1e-9 * abs(finite.max()), (series, axis)
        Console(width=60, file=None, record=True, quiet=True).print(chart)  # and it draws


def test_two_rows_around_zero_give_an_axis():
    """Catches `even_ticks` looping until the step overflows (NaN, ValueError) for 2 rows of data on
    both sides of 0 (a chart squeezed to its smallest height)."""
    axis = even_ticks(-98.98, 782.43, 2)
    assert axis.bottom <= -98.98 and axis.top >= 782.43 and math.isfinite(axis.unit)


def test_a_metric_no_run_has_is_refused_naming_the_columns_they_have(two_runs):
    """Catches ``--metric nosuch`` (a typo) exiting 0 after the tables with only "no history of
    'nosuch' to plot": it must be one line naming the option and the columns the runs do have, exit
    1, before any table is printed, no traceback."""
    res = runner.invoke(ckpt_cmd.app, ["compare", "worse", "better", "--metric", "nosuch"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--metric 'nosuch'" in lines[0], res.stderr
    assert "valid_log_ptilde" in lines[0] and "valid_log_p_se" in lines[0]  # the columns they have
    assert res.stdout == "" and "Traceback" not in res.output
    # --json and --no-chart get the same refusal (the option's value is wrong whatever is printed)
    for extra in (["--json"], ["--no-chart"]):
        res = runner.invoke(ckpt_cmd.app, ["compare", "worse", "better", "--metric", "nosuch", *extra])
        assert res.exit_code == 1 and res.stdout == "", res.output


def test_a_metric_some_runs_lack_names_them_and_draws_the_others(two_runs):
    """Catches a chart that silently leaves out the runs without the column: the runs that lack it
    are named on stderr; the runs that have it are still drawn (exit 0)."""
    run = new_run(two_runs, "with_z")
    meta = _meta(BETTER, 3)
    meta["history"]["log_z2"] = [-6.0, -5.5, -5.2]
    save_checkpoint(run.checkpoint_path, make_arrays(), meta)
    run.write_status("finished", epoch=3)
    res = runner.invoke(ckpt_cmd.app, ["compare", "worse", "with_z", "better", "--metric", "log_z2"])
    assert res.exit_code == 0, res.output
    note = [ln for ln in res.stderr.splitlines() if "log_z2" in ln]
    assert len(note) == 1 and "worse, better" in note[0] and "with_z" not in note[0], res.stderr
    assert "no history of" not in res.stdout
    # a column that is there but empty (a run stored before the column was filled) lacks it too
    run = new_run(two_runs, "empty_z")
    meta = _meta(BETTER, 3)
    meta["history"]["log_z2"] = []
    save_checkpoint(run.checkpoint_path, make_arrays(), meta)
    res = runner.invoke(ckpt_cmd.app, ["compare", "empty_z", "with_z", "--metric", "log_z2"])
    assert res.exit_code == 0 and "not in the history of empty_z" in " ".join(res.stderr.split()), res.output
