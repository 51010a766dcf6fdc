"""`bihm ckpt compare` and the dashboard's compare screen report the same epoch: the best one."""

from __future__ import annotations

import numpy as np

from bihm_app.runner.compare import at_best_epoch

HISTORY = {
    "epoch": [1, 2, 3, 4],
    "valid_log_ptilde": [-20.0, -15.0, float("nan"), -17.0],  # best at epoch 2, not the last
    "valid_log_ptilde_se": [0.5, 0.4, float("nan"), 0.6],
    "log_z2": [1.0, 2.0, 3.0, 4.0],
    "log_z2_se": [0.1, 0.2, 0.3, 0.4],
}


def test_best_epoch_not_the_last_from_a_history_dict_and_from_metrics_rows():
    """Catches a compare that reports the last checkpoint's numbers (as `ckpt compare` once did)
    or that stumbles over a NaN epoch."""
    epoch, cells = at_best_epoch(HISTORY, ["valid_log_ptilde", "log_z2", "valid_log_p"])
    assert epoch == 2 and cells == {"valid_log_ptilde": (-15.0, 0.4), "log_z2": (2.0, 0.2)}
    rows = np.array(list(zip(*HISTORY.values())), dtype=[(k, "f8") for k in HISTORY])
    assert at_best_epoch(rows, ["valid_log_ptilde", "log_z2"]) == (epoch, cells)
    assert at_best_epoch({"epoch": [1], "valid_log_ptilde": [float("nan")]}, ["log_z2"]) == (None, {})


def test_ckpt_compare_shows_the_best_epoch(tmp_path):
    from typer.testing import CliRunner

    from bihm_app.cli import ckpt_cmd
    from bihm_app.store.checkpoint import save_checkpoint
    from bihm_app.store.runs import new_run
    from tests.store.helpers import make_arrays, make_meta

    for name in ("a", "b"):
        run = new_run(tmp_path, name)
        meta = make_meta(epoch=4)
        meta["history"].update({k: v for k, v in HISTORY.items() if k != "epoch"})
        save_checkpoint(run.best_path, make_arrays(), meta)
    res = CliRunner().invoke(ckpt_cmd.app, ["compare", "a", "b", "--json", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.stdout)
    assert doc["runs"][0]["metrics"]["log_z2"] == {"value": 2.0, "se": 0.2, "epoch": 2}


SEMI = {
    "epoch": [1, 2, 3],
    "valid_log_ptilde": [-130.0, -128.7, -129.0],  # highest at epoch 2 ...
    "valid_log_ptilde_se": [0.5, 0.5, 0.5],
    "valid_error": [0.151, 0.160, float("nan")],  # ... but the classifier is best at epoch 1
    "valid_error_se": [0.01, 0.01, float("nan")],
}


def test_a_semi_supervised_runs_best_epoch_is_its_lowest_validation_error_everywhere():
    """A semi-supervised run keeps (best.h5) the epoch of its lowest validation error; the compare
    views and the runs list's "best log p~*" showed the epoch of the highest log p̃* instead (seen:
    "best ep 2" and −128.69 for a run whose best.h5 holds epoch 1). Catches any of the three
    readers (history dict, metrics rows, the status' best value) picking another epoch."""
    from types import SimpleNamespace

    from bihm_app.runner.semisup_loop import SemiTrainingRun

    epoch, cells = at_best_epoch(SEMI, ["valid_log_ptilde", "valid_error"])
    assert epoch == 1 and cells == {"valid_log_ptilde": (-130.0, 0.5), "valid_error": (0.151, 0.01)}
    rows = np.array(list(zip(*SEMI.values())), dtype=[(k, "f8") for k in SEMI])
    assert at_best_epoch(rows, ["valid_log_ptilde", "valid_error"]) == (epoch, cells)
    assert SemiTrainingRun.status_best(SimpleNamespace(history=SEMI)) == -130.0
    no_error_yet = {**SEMI, "valid_error": [float("nan")] * 3}  # falls back to log p̃*
    assert at_best_epoch(no_error_yet, ["valid_log_ptilde"])[0] == 2
