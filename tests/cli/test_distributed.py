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
