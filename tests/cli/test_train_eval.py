"""`bihm train` / `bihm eval` / `bihm logz` end to end: runs, exact resume, signals, divergence, bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.metrics import decode_events, read_run_metrics
from bihm_app.store.runs import open_run

runner = CliRunner()
QUICK = ["--data", "dna", "--layers", "12,6", "--batch", "100", "--valid-max", "200", "--z-samples", "2000", "--quiet"]


def bihm(*args):
    res = runner.invoke(app, [str(a) for a in args])
    return res


def runs_dir():
    return Path(os.environ["BIHM_HOME"]) / "runs"


def test_train_then_eval_prints_estimates_with_standard_errors():
    res = bihm("train", *QUICK, "--epochs", "2", "--name", "t1")
    assert res.exit_code == 0, res.output
    run = open_run("t1", runs_dir())
    assert run.checkpoint_path.exists() and run.best_path.exists()
    ck = load_checkpoint(run.checkpoint_path)
    assert ck.meta["progress"]["epoch"] == 2 and len(ck.meta["history"]["valid_log_ptilde"]) == 2
    assert ck.meta["data"]["name"] == "dna" and len(ck.meta["data"]["sha256"]) == 64
    assert run.read_status()["state"] == "finished"
    m = read_run_metrics(run.path)
    assert len(m.updates) == 2 * 14 and len(m.epochs) == 2  # 1400 training rows / 100
    assert np.isfinite(m.epochs["log_z2"]).all()

    res = bihm("eval", "t1", "-K", "1,10,100", "--z-samples", "5000", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ests = out["estimates"]
    assert [e["K"] for e in ests] == [1, 10, 100] and out["n"] == 1186
    for e in ests:
        assert e["log_ptilde_se"] > 0 and e["log_p_se"] > 0 and 0 < e["ess"] <= 1
    # log p̃* estimates rise with K (they are lower bounds whose bias shrinks)
    assert ests[2]["log_ptilde"] > ests[0]["log_ptilde"]
    assert out["log_pstar"]["mean"] == pytest.approx(ests[-1]["log_ptilde"] - out["log_z2"]["mean"])

    res = bihm("eval", "t1", "-K", "10", "--z-samples", "3000", "--n", "300", "--threads", "1")
    assert res.exit_code == 0 and "±" in res.stdout and "2 log Z" in res.stdout and "log p*(x)" in res.stdout
    res = bihm("logz", str(run.best_path), "--samples", "3000", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["se"] > 0


def test_resume_after_epoch_n_is_bit_identical_to_an_uninterrupted_run():
    assert bihm("train", *QUICK, "--epochs", "3", "--name", "full").exit_code == 0
    assert bihm("train", *QUICK, "--epochs", "1", "--name", "part").exit_code == 0
    res = bihm("train", "--resume", "part", "--epochs", "3", "--quiet")
    assert res.exit_code == 0, res.output
    a = load_checkpoint(runs_dir() / "full" / "checkpoint.h5")
    b = load_checkpoint(runs_dir() / "part" / "checkpoint.h5")
    for name, arr in a.arrays.items():
        assert np.array_equal(arr, b.arrays[name]), name
    assert a.meta["history"]["valid_log_ptilde"] == b.meta["history"]["valid_log_ptilde"]
    assert len(open_run("part", runs_dir()).metrics_paths()) == 2  # one metrics file per attempt


def test_sigint_mid_epoch_saves_and_resume_is_still_exact(tmp_path):
    """A real `bihm train` process gets SIGINT mid-run, then a resume finishes it: the result equals
    an uninterrupted run bit for bit. Catches a Ctrl-C that does not save, exits with another code
    than 130 or forgets how to resume, and a resume that loses or repeats updates, or restores the
    optimizer or random state wrongly. (The uninterrupted reference and the resume run in-process,
    the same code with the same one thread, to save two interpreter starts.)"""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    args = ["train", *QUICK, "--epochs", "6", "--runs-dir", str(tmp_path)]
    ref = bihm(*args, "--name", "ref")
    assert ref.exit_code == 0, ref.output
    base = [sys.executable, "-m", "bihm_app", *args]
    proc = subprocess.Popen(base + ["--name", "cut"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    status = tmp_path / "cut" / "status.json"
    t0 = time.time()
    while time.time() - t0 < 120:  # until this process runs the training loop
        try:
            if json.loads(status.read_text()).get("state") == "running":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, errb = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("run finished before the signal arrived (machine too fast for this timing)")
    assert proc.returncode == 130, errb.decode()
    assert b"--resume cut" in out
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["state"] == "stopped"
    res = bihm("train", "--resume", "cut", "--runs-dir", tmp_path, "--quiet")
    assert res.exit_code == 0, res.output
    a = load_checkpoint(tmp_path / "ref" / "checkpoint.h5")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.h5")
    for name in a.arrays:
        assert np.array_equal(a.arrays[name], b.arrays[name]), name


def test_divergence_rolls_back_and_halves_the_learning_rate(monkeypatch):
    from bihm_app.engine import training

    real_step = training.Trainer.step
    calls = {"n": 0}

    def flaky_step(self, x):
        calls["n"] += 1
        res = real_step(self, x)
        if calls["n"] == 20:  # one NaN in epoch 2
            res.finite = False
        return res

    monkeypatch.setattr(training.Trainer, "step", flaky_step)
    res = bihm("train", *QUICK, "--epochs", "3", "--lr", "0.002", "--name", "nan")
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(runs_dir() / "nan" / "checkpoint.h5")
    assert ck.meta["lr"] == pytest.approx(0.001)
    assert ck.meta["progress"]["rollbacks"] == 1 and ck.meta["progress"]["epoch"] == 3
    events = [e for e in decode_events(read_run_metrics(runs_dir() / "nan").events) if e["kind"] != "phase"]
    assert [e["kind"] for e in events] == ["rollback"] and "halved" in events[0]["message"]


def test_repeated_divergence_stops_with_a_clear_message(monkeypatch):
    from bihm_app.engine import training

    real_step = training.Trainer.step

    def always_nan(self, x):
        res = real_step(self, x)
        res.finite = False
        return res

    monkeypatch.setattr(training.Trainer, "step", always_nan)
    res = bihm("train", *QUICK, "--epochs", "2", "--name", "boom")
    assert res.exit_code == 1
    assert "diverged" in res.stderr and "Traceback" not in res.output
    assert open_run("boom", runs_dir()).read_status()["state"] == "diverged"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--data", "nosuchdata"], "nosuchdata"),
        (["train", "--layers", "300,0"], "layer"),
        (["train", "--layers", "ab"], "layer"),
        (["train", "-K", "0"], "K must be"),
        (["train", "--lr", "1e38"], "learning rate"),
        (["train", "--device", "cuda:7"], "cuda"),
        (["train", "--resume", "ghost"], "ghost"),
        (["eval", "/nonexistent/run"], "/nonexistent/run"),
        (["eval", "/etc/hostname"], "/etc/hostname"),
        (["eval", "x", "-K", "0,10"], "-K"),
        (["logz", "nope.h5"], "nope.h5"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(args, needle):
    res = bihm(*args)
    assert res.exit_code != 0
    text = res.stderr.strip()
    assert needle in text, text
    assert "Traceback" not in res.output and len(text.splitlines()) <= 2, text
