"""`bihm train`, `bihm eval` and `bihm logz` under torchrun: two CPU ranks (gloo) train one model
data-parallel, and share the samples of the estimators."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _torchrun() -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    if torchrun.exists():
        return str(torchrun)
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    return shutil.which("torchrun")


def _segments(stdout: str) -> list[str]:
    """The output of each command of one ``tests.cli._bihm_commands`` launch (rank 0's markers)."""
    parts = stdout.split("@@ command ")
    assert parts[0].strip() == "", stdout  # nothing printed before the first command
    return [p.partition("\n")[2] for p in parts[1:]]


def test_torchrun_ranks_train_one_model_and_shard_eval_and_logz_like_one_process(tmp_path):
    """Two ranks train 2 epochs (the run ends with a check that every rank holds identical
    parameters); then, in the same ranks, `bihm eval`, and in a second launch `bihm logz`, split the
    chunks of their estimators and merge the log-moments: the estimates and standard errors must be
    those of one process drawing the same samples (to the order of double-precision sums).

    Catches ranks that drift apart or all report (the run line printed once), data-parallel
    training that does not learn (the validation bound must rise), a rank that repeats or drops
    chunks (its samples would change the means), a wrong merge (lse of means instead of moments, SE
    not recombined), and ranks other than 0 printing. `eval` and `logz` each destroy the process
    group when done, so logz gets a launch of its own (and joins the group from scratch there). The
    single-process runs go in-process, to save interpreter starts."""
    common = ["--runs-dir", str(tmp_path), "--device", "cpu"]
    train = ["train", "--data", "dna", "--layers", "12,6", "--epochs", "2", "--valid-max", "200", "--z-samples", "2000",
             "--name", "ddp", "--quiet", *common]  # fmt: skip
    # chunks: K = 20 in one chunk per batch of 100 points (6 batches of the valid split, dealt to the
    # ranks in turn); 2 log Z in chunks of 20,000 outer samples (2 and 3 chunks, uneven for logz)
    ev = ["eval", "ddp", "--split", "valid", "-K", "1,20", "--z-samples", "40000", "--json", "--threads", "1", *common]
    lz = ["logz", "ddp", "--samples", "50000", "--json", "--threads", "1", *common]
    dist = [_torchrun(), "--standalone", "--nnodes=1", "--nproc_per_node=2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([*dist, "-m", "tests.cli._bihm_commands", *train, "--then", *ev], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out_train, out_eval = _segments(r.stdout)
    assert r.stdout.count("run ddp") == 1 and "run ddp" in out_train  # only rank 0 reports
    assert r.stdout.count('"checkpoint"') == 1, r.stdout  # one rank printed
    hist = load_checkpoint(tmp_path / "ddp" / "checkpoint.h5").meta["history"]["valid_log_ptilde"]
    assert len(hist) == 2 and hist[1] > hist[0]
    r = subprocess.run([*dist, "-m", "bihm_app", *lz], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('"checkpoint"') == 1, r.stdout  # one rank printed
    out = {"dist": json.loads(out_eval), "dist_z": json.loads(r.stdout)}
    for name, args in (("", ev), ("_z", lz)):
        single = CliRunner().invoke(app, args)
        assert single.exit_code == 0, single.output
        out["single" + name] = json.loads(single.stdout)
    a, b = out["single"], out["dist"]
    for ea, eb in zip(a["estimates"], b["estimates"]):
        for key in ("log_ptilde", "log_ptilde_se", "log_p", "log_p_se", "ess", "ess_se"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-9, abs=1e-12), key
        assert ea["n"] == eb["n"] > 500  # the whole valid split of dna
    assert b["log_z2"]["mean"] == pytest.approx(a["log_z2"]["mean"], rel=1e-9, abs=1e-12)
    assert b["log_z2"]["se"] == pytest.approx(a["log_z2"]["se"], rel=1e-9)
    assert out["dist_z"]["log_z2"] == pytest.approx(out["single_z"]["log_z2"], rel=1e-9, abs=1e-12)
    assert out["dist_z"]["se"] == pytest.approx(out["single_z"]["se"], rel=1e-9)
    assert a["log_z2"]["se"] > 0 and out["single_z"]["se"] > 0
