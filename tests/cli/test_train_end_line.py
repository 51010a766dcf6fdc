"""`bihm train`'s last line gives the run's best, over every attempt: what status.json says about the
epoch best.h5 holds — not the best of the epochs this process printed (a resume that improves on
nothing would show a worse "best" than the run has)."""

from __future__ import annotations

from types import SimpleNamespace

from bihm_app.cli import train_cmd
from bihm_app.runner.semisup_loop import SemiTrainingRun
from bihm_app.store.runs import new_run


def test_the_last_line_takes_the_runs_best_error_and_bound_from_status(tmp_path, capsys):
    """Catches the semi-supervised line "best valid error" taken from this attempt's epochs (20 %)
    where the run's best.h5 epoch, from an earlier attempt, has 12 %."""
    run = new_run(tmp_path, "semi")
    run.write_status("finished", best_valid=-150.0, best_error=0.12)
    reporter = SimpleNamespace(best=-160.0, best_error=0.2)
    train_cmd._report_end(run, "epoch limit", reporter)
    line = " ".join(capsys.readouterr().out.split())
    assert "best valid error 12.00 %" in line and "20.00" not in line, line
    run.write_status("finished", best_valid=None, best_error=None)  # nothing in status: this attempt's
    train_cmd._report_end(run, "epoch limit", reporter)
    assert "best valid error 20.00 %" in " ".join(capsys.readouterr().out.split())


def test_status_holds_the_error_of_the_epoch_best_h5_holds():
    """Catches status.json's best_error missing, or taken from another epoch than the lowest error
    (whose parameters best.h5 holds)."""
    history = {"epoch": [1, 2, 3], "valid_error": [0.3, 0.12, 0.2], "valid_log_ptilde": [-170.0, -165.0, -158.0],
               "valid_log_ptilde_se": [0.4] * 3}  # fmt: skip
    fake = SimpleNamespace(history=history, spec=SimpleNamespace(train=SimpleNamespace(method="bihm")))
    fake.status_best = lambda: SemiTrainingRun.status_best(fake)
    fields = SemiTrainingRun.status_fields(fake)
    assert fields == {"best_valid": -165.0, "best_error": 0.12}
