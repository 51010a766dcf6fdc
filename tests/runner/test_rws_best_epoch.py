"""An RWS run (`--method rws`) early-stops on validation log p(x): its best.h5 holds the epoch of the
highest log p, not of the highest log p̃*. Every view that says "best log p̃*" or "at the best
epoch" must mean that epoch, and show log p̃* there — not the criterion (log p), and not the
highest log p̃* of another epoch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store.checkpoint import load_checkpoint, save_checkpoint
from bihm_app.store.runs import new_run, summarize_run

#: log p peaks at epoch 2, log p̃* at epoch 3: the two rules pick different epochs.
LOG_P = [-160.0, -150.0, -155.0]
LOG_PTILDE = [-170.0, -165.0, -158.0]


def bihm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _history(n: int = 3) -> dict:
    return {"epoch": [1, 2, 3][:n], "step": [10, 20, 30][:n], "valid_log_p": LOG_P[:n], "valid_log_p_se": [0.5] * n,
            "valid_log_ptilde": LOG_PTILDE[:n], "valid_log_ptilde_se": [0.4] * n, "log_z2": [-5.0] * n,
            "log_z2_se": [0.1] * n, "ess": [0.2] * n}  # fmt: skip


@pytest.fixture
def forged_rws_run() -> Path:
    """A real checkpoint of a tiny run whose meta says rws, with the history above."""
    res = bihm("train", "--data", "dna", "--layers", "8,4", "--epochs", "1", "--valid-max", "50", "--z-samples", "0",
               "--method", "rws", "--quiet", "--name", "src")  # fmt: skip
    assert res.exit_code == 0, res.output
    root = Path(os.environ["BIHM_HOME"]) / "runs"
    ck = load_checkpoint(root / "src" / "checkpoint.h5")
    meta = dict(ck.meta)
    assert meta["config"]["train"]["method"] == "rws"
    meta["history"] = _history()
    meta["progress"] = {**meta["progress"], "epoch": 3, "best_epoch": 2, "best_valid": LOG_P[1]}
    run = new_run(root, "rws")
    for path in (run.checkpoint_path, run.best_path):
        save_checkpoint(path, ck.arrays, meta)
    run.write_status("finished", epoch=3)
    return run.path


def test_runs_list_compare_and_report_show_log_ptilde_at_the_log_p_best_epoch(forged_rws_run, tmp_path):
    """Catches the runs list's "best log p~*" showing log p (−150.00, the criterion) or the highest
    log p̃* of any epoch (−158.00), `ckpt compare` reading its metrics at epoch 3, and the report
    calling log p the best validation log p̃*. The truth: epoch 2, log p̃* −165.00."""
    assert summarize_run(forged_rws_run).best_valid == LOG_PTILDE[1]
    res = bihm("ckpt", "compare", forged_rws_run / "best.h5", Path(os.environ["BIHM_HOME"]) / "runs" / "src" / "best.h5", "--json")
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)["runs"][0]["metrics"]
    assert metrics["valid_log_ptilde"]["epoch"] == 2 and metrics["valid_log_ptilde"]["value"] == LOG_PTILDE[1]
    assert metrics["valid_log_p"]["value"] == LOG_P[1]
    shown = " ".join(bihm("ckpt", "show", "rws").stdout.split())  # the raw field, named for what it holds
    assert "best_valid (log p, the RWS criterion) -150" in shown, shown
    res = bihm("report", "rws", "--out", tmp_path / "rep", "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    md = " ".join((tmp_path / "rep" / "report.md").read_text().split())
    assert "best validation log p̃\\*(x) -165.000 at epoch 2" in md and "| -165.000 |" in md and "-150.000" not in md


def test_status_json_and_the_run_view_take_the_same_epoch(tmp_path):
    """Catches status.json's best_valid (the runs list's source while a run trains) being the RWS
    criterion, and the run view's best log p~* being the highest log p̃* rather than best.h5's."""
    from bihm_app.runner.train_loop import TrainingRun
    from bihm_app.store.metrics import MetricsWriter
    from bihm_app.tui.widgets.run_metrics import RunSeries

    for method, want in (("rws", LOG_PTILDE[1]), ("bihm", LOG_PTILDE[2])):
        loop = SimpleNamespace(spec=SimpleNamespace(train=SimpleNamespace(method=method)), history=_history(),
                               progress=SimpleNamespace(to_dict=lambda: {"best_valid": LOG_PTILDE[2]}))  # fmt: skip
        assert TrainingRun.status_best(loop) == want, method
        folder = tmp_path / method
        folder.mkdir()
        with MetricsWriter(folder / "metrics-1.h5", {"run": method, "config": {"train": {"method": method}}, "start_step": 0}) as w:
            h = _history()
            for i in range(3):
                w.log_epoch({k: h[k][i] for k in h} | {"time": float(i), "train_objective": -170.0, "valid_log_pstar": -160.0,
                                                         "lr": 1e-3})  # fmt: skip
        series = RunSeries(folder)
        try:
            series.poll()
            assert series.best_valid() == (want, 0.4), method
        finally:
            series.close()


def test_the_end_of_training_line_shows_log_ptilde_of_the_best_h5_epoch(forged_rws_run, monkeypatch):
    """`bihm train`'s last line ("best valid log p̃* …") must say what `bihm runs list` says. Catches
    it taking the highest log p̃* of the epochs it printed: −158.00 (epoch 3) for an RWS run whose
    best.h5 holds epoch 2 (−165.00), and, for a resumed attempt that improves on nothing, its own
    epochs' best (−170.00) rather than the run's."""
    import io

    from rich.console import Console

    from bihm_app.cli import train_cmd
    from bihm_app.cli.train_report import RichReporter
    from bihm_app.store.runs import RunFolder

    run = RunFolder(forged_rws_run)
    run.write_status("finished", best_valid=LOG_PTILDE[1])  # as the training loop's status_best() writes it
    h = _history()

    def end_line(rows: list[tuple[dict, bool]]) -> str:
        rep = RichReporter(Console(file=io.StringIO()), quiet=True)
        for row, improved in rows:
            rep.epoch(row, improved)
        console = Console(file=io.StringIO(), width=300)
        monkeypatch.setattr(train_cmd, "out", console)
        train_cmd._report_end(run, "epoch limit 3 reached", rep)
        return console.file.getvalue()

    # the RWS criterion (log p) improves at epochs 1 and 2, not 3
    assert "best valid log p̃* -165.00" in end_line([({k: h[k][i] for k in h}, i < 2) for i in range(3)])
    assert "best valid log p̃* -165.00" in end_line([({**{k: h[k][2] for k in h}, "valid_log_ptilde": -170.0}, False)])
