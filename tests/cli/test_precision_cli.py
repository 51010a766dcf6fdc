"""`bihm train --precision bf16` trains and records the precision; a bad value is one line, no run."""

import os
from pathlib import Path

from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store.checkpoint import load_checkpoint

QUICK = ["--data", "dna", "--layers", "12,6", "--valid-max", "200", "--z-samples", "2000", "--quiet", "--epochs", "1"]


def test_bf16_training_run_records_its_precision():
    res = CliRunner().invoke(app, ["train", *QUICK, "--precision", "bf16", "--name", "b", "--threads", "1"])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(Path(os.environ["BIHM_HOME"]) / "runs" / "b" / "checkpoint.h5")
    assert ck.meta["config"]["train"]["precision"] == "bf16"
    assert ck.meta["history"]["valid_log_ptilde"][0] is not None


def test_unknown_precision_is_refused_before_a_run_exists(tmp_path):
    res = CliRunner().invoke(app, ["train", *QUICK, "--precision", "fp16", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 1 and "precision" in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())
