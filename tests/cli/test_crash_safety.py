"""kill -9 the training process at random moments (during checkpoint writes too): the run folder
always keeps a checkpoint that verifies and resumes. SIGTERM saves and exits cleanly."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from bihm_app.store.checkpoint import load_checkpoint, verify_checkpoint

# tiny epochs (14 updates, 100 validation points, no 2 log Z) so checkpoints are written many times a second
ARGS = ["--data", "dna", "--layers", "8,4", "--valid-max", "100", "--z-samples", "0", "--patience", "0", "--quiet"]


def _start(tmp_path, *extra):
    cmd = [sys.executable, "-m", "bihm_app", "train", *extra, "--runs-dir", str(tmp_path)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


def _wait_running(run, proc, timeout=60):
    """Until this process has taken the run over (its pid in status.json, state running)."""
    t0 = time.time()
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            st = json.loads((run / "status.json").read_text())
            if st.get("state") == "running" and st.get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        assert time.time() - t0 < timeout, "training never started"
        time.sleep(0.02)


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path):
    rng = random.Random(1234)
    run = tmp_path / "crashy"
    kills, epochs_seen = 0, []
    proc = _start(tmp_path, *ARGS, "--epochs", "100000", "--name", "crashy")
    _wait_for(run / "checkpoint.h5", proc)
    for i in range(20):
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        ck = load_checkpoint(run / "checkpoint.h5")  # raises if the kill left it unreadable
        assert verify_checkpoint(run / "checkpoint.h5").ok
        epochs_seen.append(ck.meta["progress"]["epoch"])
        proc = _start(tmp_path, "--resume", "crashy", "--epochs", "100000", "--quiet")
        _wait_running(run, proc)
    # the last resume ends with SIGTERM: a clean save, status "stopped", exit code 143
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read().decode()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped"
    final = load_checkpoint(run / "checkpoint.h5")
    assert kills == 20
    assert final.meta["progress"]["step"] > 0
    # training made progress across the kills and never went backwards past a saved epoch
    assert epochs_seen == sorted(epochs_seen) and final.meta["progress"]["epoch"] >= epochs_seen[-1]
    assert not list(run.glob(".*.tmp"))  # temp files of interrupted writes are swept on resume
