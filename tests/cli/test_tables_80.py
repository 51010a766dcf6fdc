"""Every `bihm` table at 80 columns (issue #15): columns are dropped, abbreviated or split over
several tables, never squeezed — every header and every value shown is whole.

On main before this, `bihm runs list` with a 62-character run name collapsed the other columns
and showed the status as `stopp…`; the helper in table_check.py reads the cells back and fails
on any value that is cut or any header that is not whole.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from bihm_app.cli import common, runs_cmd
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import list_runs, new_run, runs_root
from tests.cli.table_check import assert_whole
from tests.store.helpers import make_arrays, make_meta

runner = CliRunner()
LONG = "bmnist-300x200x100x75x50x35x30x25x20x15x10x10-20261126-051556"  # the old default name


@pytest.fixture
def width(request, monkeypatch):
    """The CLI console's width for one test (the console reads COLUMNS only when it is created)."""
    monkeypatch.setattr(common.out, "width", request.param)
    return request.param


@pytest.fixture
def runs():
    """A run with the old 62-character default name (stopped), a finished and a crashed one."""
    root = runs_root()
    for name, state, epoch in [(LONG, "stopped", 4), ("bars-2L6-1126a", "finished", 6), ("crash", "crashed", 2)]:
        run = new_run(root, name)
        save_checkpoint(run.checkpoint_path, make_arrays(), make_meta(epoch=epoch, step=40 * epoch))
        run.write_status(state, epoch=epoch)
        status = json.loads(run.status_path.read_text())  # three days old: an age that does not tick
        status["updated"] = (datetime.now(timezone.utc) - timedelta(days=3, hours=1)).isoformat()
        run.status_path.write_text(json.dumps(status))
    return root


RUN_COLUMNS = {"name": None, "status": None, "data": None, "layers": None, "method": None, "epochs done": "done",
               "best valid log p̃*": "best p̃*", "age": None}  # fmt: skip


@pytest.mark.parametrize("width", [80, 100, 160], indirect=True)
def test_runs_list_shows_whole_values_at_any_width(runs, width):
    res = runner.invoke(runs_cmd.app, ["list"])
    assert res.exit_code == 0, res.output
    expected = [[r.name, r.status, "bars", "6,3", "bihm", str(r.epoch), f"{r.best_valid:.2f}", "3d"]
                for r in list_runs(runs)]  # fmt: skip
    assert {r[1] for r in expected} == {"stopped", "finished", "crashed"}
    shown = assert_whole(res.stdout, width, RUN_COLUMNS, expected, always=("name", "status"))
    if width >= 160:
        assert shown == list(RUN_COLUMNS)
    else:
        assert "not shown at" in res.stdout  # what was left out is said


@pytest.mark.parametrize("width", [80], indirect=True)
def test_ckpt_compare_shows_every_run_whole_at_80_columns(runs, width):
    """Run names as headers: `#1`, `#2` … with the names below the table; runs that do not fit
    side by side go to a second table with the key column repeated."""
    from bihm_app.cli import ckpt_cmd
    from bihm_app.cli.ckpt_common import fmt_value, show_value
    from bihm_app.runner.checkpoints import METRICS, comparison

    names = [LONG, "bars-2L6-1126a", "crash"]
    res = runner.invoke(ckpt_cmd.app, ["compare", *names, "--latest", "--no-chart"])
    assert res.exit_code == 0, res.output
    doc = comparison([runs / n / "checkpoint.h5" for n in names])
    heads = {"key": None, "metric": None} | {r["label"]: f"#{i + 1}" for i, r in enumerate(doc["runs"])}
    sha = lambda k, v: v[:12] + "…" if k == "data.sha256" and len(v) > 12 else v  # noqa: E731
    config = [[("≠ " if k in doc["config_differences"] else "") + k, *(sha(k, show_value(f.get(k))) for f in doc["flat"])]
              for k in doc["keys"]]  # fmt: skip
    runs_ = doc["runs"]
    metrics = [["epochs done / step", *[f"{r['progress']['epoch']} / {r['progress']['step']}" for r in runs_]],
               ["parameters", *[f"{r['parameters']['total']:,}" for r in runs_]]]  # fmt: skip
    metrics += [[label, *[fmt_value(r["metrics"][k]["value"], r["metrics"][k]["se"]) for r in runs_]]
                for k, label in METRICS if k in runs_[0]["metrics"]]  # fmt: skip
    best = [r["best_valid_log_ptilde"] for r in runs_]
    metrics.append(["highest valid log p̃* (epoch)", *[f"{fmt_value(b['value'], b['se'])} ({show_value(b['epoch'])})" for b in best]])
    text, cut = res.stdout, res.stdout.index("metrics at each run")
    shown = assert_whole(text[:cut], width, {k: v for k, v in heads.items() if k != "metric"}, config, always=("key",))
    shown += assert_whole(text[cut:], width, {k: v for k, v in heads.items() if k != "key"}, metrics, always=("metric",))
    assert set(shown) >= {r["label"] for r in runs_}  # every run in some table
    for i, name in enumerate(names):
        assert f"#{i + 1} = {name}" in text  # the short headers explained, names whole


def _printed(parts, width: int) -> str:
    """What `out.print` of each part writes on a terminal ``width`` columns wide."""
    import io

    from rich.console import Console

    con = Console(width=width, file=io.StringIO(), color_system=None, record=True)
    for part in parts:
        con.print(part)
    return con.export_text()


def _repro_result():
    """A finished `bihm repro uci` of five sets, two learning rates, two (K, points) evaluations."""
    from bihm_app.runner import repro, thesis

    groups = []
    for i, name in enumerate(thesis.UCI_SETS):
        runs = [repro.RunState(repro.uci_run_name(name, lr, 0), lr, 0, state="finished", epoch=1200 + i, max_epochs=2000,
                               best_epoch=1100 + i, best_valid=-13.72 - i, best_valid_se=0.031, stop_reason="early stopping",
                               train_seconds=3600 * (i + 1)) for lr in (1e-2, 1e-3)]  # fmt: skip
        g = repro.GroupResult(name, runs, selected=runs[0].name, split_size=26147)
        for lab in ("K=1000", "K=10000 (first 2000)"):
            g.comparisons[lab] = {k: repro.Comparison(v * 1.01, 0.03, v) for k, v in thesis.UCI_TABLE_3_1[name].items()}
        groups.append(g)
    return repro.ReproResult("uci", groups, repro.EvalSettings(), None)


def test_repro_tables_at_80_columns():
    """The comparison table has 9 columns (3 per evaluation): it splits, set/quantity/thesis repeated."""
    from bihm_app.runner import repro

    result = _repro_result()
    for t in (repro.training_table(result), repro.comparison_table(result)):
        text = _printed(common.table_of(t, 80), 80)
        spec = [(c, t.short.get(c)) for c in t.columns]
        shown = assert_whole(text, 80, spec, t.rows, always=tuple(t.columns[: t.key]))
        assert set(shown) | set(t.drop) >= set(t.columns), shown  # every column shown or named as left out
        for c in set(t.columns) - set(shown):
            assert c in text.split("not shown at 80 columns:")[1]


@pytest.mark.parametrize("width", [80], indirect=True)
def test_eval_table_at_80_columns(width):
    from types import SimpleNamespace

    from bihm_app.cli.eval_cmd import _estimates_table

    results = [dict(K=k, n=10000, log_p=-1234.56 + k / 1e4, log_p_se=12.34, log_ptilde=-1240.5, log_ptilde_se=11.2, ess=0.123)
               for k in (1, 10, 100, 1000, 10000)]  # fmt: skip
    res = SimpleNamespace(cache=SimpleNamespace(data="bmnist"), checkpoint=runs_root() / LONG / "best.h5")
    text = _printed(_estimates_table(res, results, {"mean": -3.25, "se": 0.5}, "test"), width)
    rows = [[str(r["K"]), f"{r['log_p']:.2f} ± 12.34", "-1240.50 ± 11.20", "12.3 %", f"{-1240.5 + 3.25:.2f} ± {11.211155:.2f}"]
            for r in results]  # fmt: skip
    spec = {"K": None, "log p(x)": None, "log p̃*(x)": None, "ESS": None, "log p*(x)": None}
    assert assert_whole(text, width, spec, rows) == list(spec)


def test_confusion_matrix_at_80_columns():
    """Ten classes with four-digit counts: 95 columns boxed; compact and whole at 80."""
    from bihm_app.cli.classify_cmd import confusion_table

    confusion = [[1000 + i if i == j else (j * 7 + i) % 13 for j in range(10)] for i in range(10)]
    text = _printed(confusion_table(confusion, "confusion matrix", 80), 80)
    rows = [[str(i), *map(str, row), f"{100 * (1 - row[i] / sum(row)):.1f} %"] for i, row in enumerate(confusion)]
    spec = {"true \\ pred": "t\\p", **{str(j): None for j in range(10)}, "error": None}
    assert assert_whole(text, 80, spec, rows) == list(spec)


@pytest.mark.parametrize("width", [80], indirect=True)
def test_data_list_and_ckpt_show_at_80_columns(runs, width):
    from bihm_app.cli import ckpt_cmd, data_cmd

    res = runner.invoke(data_cmd.app, ["list"])
    assert res.exit_code == 0, res.output
    assert "…" not in res.stdout and ("density" in res.stdout or "dens." in res.stdout)
    assert "bmnist" in res.stdout and "verified" in res.stdout
    res = runner.invoke(ckpt_cmd.app, ["show", LONG, "--latest"])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert all(len(line) <= width for line in text.splitlines())
    assert "".join(line.strip() for line in text.split("file")[1].split("format")[0].splitlines()).endswith(
        f"{LONG}/checkpoint.h5")  # the path wraps, whole
    assert text.count("…") == 2  # only the two shortened digests: params sha256, data sha256
