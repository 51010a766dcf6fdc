"""`bihm train` under torchrun: two CPU ranks (gloo) train one model data-parallel."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bihm_app.store.checkpoint import load_checkpoint


def test_torchrun_two_ranks_train_one_consistent_model(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    cmd = [str(torchrun if torchrun.exists() else shutil.which("torchrun")), "--standalone", "--nnodes=1",
           "--nproc_per_node=2", "-m", "bihm_app", "train", "--data", "dna", "--layers", "12,6", "--epochs", "2",
           "--valid-max", "200", "--z-samples", "2000", "--device", "cpu", "--runs-dir", str(tmp_path),
           "--name", "ddp", "--quiet"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    # the run ends with a check that every rank holds identical parameters
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("run ddp") == 1  # only rank 0 reports
    ck = load_checkpoint(tmp_path / "ddp" / "checkpoint.h5")
    hist = ck.meta["history"]["valid_log_ptilde"]
    assert len(hist) == 2 and hist[1] > hist[0]


def _torchrun() -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    if torchrun.exists():
        return str(torchrun)
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not installed")
    return shutil.which("torchrun")


def test_eval_and_logz_shard_samples_across_ranks_with_the_single_process_result(tmp_path):
    """Two gloo ranks split the chunks of `bihm eval` / `bihm logz` and merge the log-moments: the
    estimates and standard errors must be those of one process drawing the same samples (to the
    order of double-precision sums). Catches a rank that repeats or drops chunks (its samples would
    change the means), a wrong merge (lse of means instead of moments, SE not recombined), and
    ranks other than 0 printing. (The single-process runs go in-process, to save interpreter starts.)"""
    import json

    from typer.testing import CliRunner

    from bihm_app.cli.app import app

    common = ["--runs-dir", str(tmp_path), "--device", "cpu"]
    res = CliRunner().invoke(app, ["train", "--data", "dna", "--layers", "12,6", "--epochs", "1", "--valid-max", "100",
                                   "--z-samples", "0", "--name", "r", "--quiet", "--threads", "1", *common])  # fmt: skip
    assert res.exit_code == 0, res.output
    # chunks: K = 20 in one chunk per batch of 100 points (6 batches of the valid split, dealt to the
    # ranks in turn); 2 log Z in chunks of 20,000 outer samples (2 and 3 chunks, uneven for logz)
    ev = ["eval", "r", "--split", "valid", "-K", "1,20", "--z-samples", "40000", "--json", "--threads", "1", *common]
    lz = ["logz", "r", "--samples", "50000", "--json", "--threads", "1", *common]
    dist = [_torchrun(), "--standalone", "--nnodes=1", "--nproc_per_node=2", "-m", "bihm_app"]
    out = {}
    for name, args in (("", ev), ("_z", lz)):
        single = CliRunner().invoke(app, args)
        assert single.exit_code == 0, single.output
        out["single" + name] = json.loads(single.stdout)
        r = subprocess.run(dist + args, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, name + r.stdout + r.stderr
        assert r.stdout.count('"checkpoint"') == 1, r.stdout  # one rank printed
        out["dist" + name] = json.loads(r.stdout)
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
