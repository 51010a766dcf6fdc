"""`bihm train 2>&1 | tee log` and Ctrl-C: the terminal sends SIGINT to tee as well, so the pipe
bihm writes to is gone by the time it reports. The run must still be saved and marked stopped."""

import json
import os
import signal
import subprocess
import sys
import time


def test_ctrl_c_with_the_reader_of_the_pipe_gone_saves_and_marks_the_run_stopped(tmp_path):
    """Catches Rich's default broken-pipe handling (``SystemExit(1)`` from the next line written):
    training died at the next epoch line with status ``crashed``, message "1" and exit code 1,
    instead of saving at the Ctrl-C and exiting 130 with status ``stopped``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "bihm_app", "train", "--data", "dna", "--layers", "8,4", "--valid-max", "100",
           "--z-samples", "0", "--patience", "0", "--epochs", "100000", "--name", "piped", "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)  # `2>&1 | tee`
    try:
        deadline = time.time() + 120
        while b"epoch" not in proc.stdout.readline():  # training has started and reports every epoch
            assert proc.poll() is None and time.time() < deadline, "bihm train did not start"
        proc.stdout.close()  # tee is gone ...
        time.sleep(0.5)  # ... while epochs (14 updates each) keep being reported
        proc.send_signal(signal.SIGINT)  # ... and the Ctrl-C reaches bihm
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = json.loads((tmp_path / "piped" / "status.json").read_text())
    assert (status["state"], status.get("message")) == ("stopped", "signal SIGINT"), status
    assert code == 130
