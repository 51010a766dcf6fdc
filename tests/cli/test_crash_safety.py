"""kill -9 the training process at random moments (during checkpoint writes too): the run folder
always keeps a checkpoint that verifies and resumes. SIGTERM saves and exits cleanly."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from bihm_app.store.checkpoint import load_checkpoint, verify_checkpoint

ROOT = Path(__file__).resolve().parents[2]
# tiny epochs (14 updates, 100 validation points, no 2 log Z) so checkpoints are written many times a second
ARGS = ["--data", "dna", "--layers", "8,4", "--valid-max", "100", "--z-samples", "0", "--patience", "0", "--quiet"]


def _start(tmp_path, *extra):
    cmd = [sys.executable, "-m", "bihm_app", "train", *extra, "--runs-dir", str(tmp_path)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class _Forked:
    """A `bihm train` child forked by ``tests/cli/_train_server.py`` (which imported torch and the
    command line once): the same ``main()`` as ``python -m bihm_app``, without 1–2 s of interpreter
    start-up per resume. The subset of Popen the test uses: pid, poll, wait, send_signal, stderr."""

    def __init__(self, server: subprocess.Popen, log: Path, args: list[str]):
        self.server, self.log, self.status = server, log, None
        self.pid = int(self._ask(f"fork {log} {json.dumps(args)}"))

    def _ask(self, line: str) -> str:
        self.server.stdin.write(line + "\n")
        self.server.stdin.flush()
        return self.server.stdout.readline().strip()

    def poll(self):
        if self.status is None:
            reply = self._ask(f"poll {self.pid}")
            if reply != "running":
                self.status = os.waitstatus_to_exitcode(int(reply))
        return self.status

    def wait(self, timeout: float):
        t0 = time.time()
        while self.poll() is None:
            assert time.time() - t0 < timeout, f"child {self.pid} still running after {timeout} s"
            time.sleep(0.01)
        return self.status

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    @property
    def stderr_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _stderr(proc) -> str:
    return proc.stderr_text if isinstance(proc, _Forked) else proc.stderr.read().decode()


def _wait_for(path, proc, timeout=60):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, _stderr(proc)
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


def _wait_running(run, proc, timeout=60):
    """Until this process has taken the run over (its pid in status.json, state running)."""
    t0 = time.time()
    while True:
        assert proc.poll() is None, _stderr(proc)
        try:
            st = json.loads((run / "status.json").read_text())
            if st.get("state") == "running" and st.get("pid") == proc.pid:
                return
        except (OSError, ValueError):
            pass
        assert time.time() - t0 < timeout, "training never started"
        time.sleep(0.02)


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path):
    """20 kill -9 of `bihm train` at random moments (0.05–0.6 s into a resumed run, so during
    updates and checkpoint writes alike), each followed by a resume; then SIGTERM. Catches a
    checkpoint a kill leaves unreadable or unverifiable, progress that goes backwards, a resume that
    cannot take over a killed run's folder, temp files never swept, and a SIGTERM that does not save
    and exit 143. The killed trainers are forked from a server that imported torch once (the same
    ``main()``); the last resume, which gets the SIGTERM, is a real ``python -m bihm_app``."""
    rng = random.Random(1234)
    run = tmp_path / "crashy"
    kills, epochs_seen = 0, []
    server = subprocess.Popen([sys.executable, "-m", "tests.cli._train_server"], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    proc = None
    try:
        assert server.stdout.readline().strip() == "ready"
        proc = _Forked(server, tmp_path / "child-0.log", ["train", *ARGS, "--epochs", "100000", "--name", "crashy",
                                                          "--runs-dir", str(tmp_path)])  # fmt: skip
        _wait_for(run / "checkpoint.h5", proc)
        for i in range(20):
            time.sleep(rng.uniform(0.05, 0.6))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            kills += 1
            ck = load_checkpoint(run / "checkpoint.h5")  # raises if the kill left it unreadable
            assert verify_checkpoint(run / "checkpoint.h5").ok
            epochs_seen.append(ck.meta["progress"]["epoch"])
            resume = ["--resume", "crashy", "--epochs", "100000", "--quiet"]
            if i < 19:
                proc = _Forked(server, tmp_path / f"child-{i + 1}.log", ["train", *resume, "--runs-dir", str(tmp_path)])
            else:
                proc = _start(tmp_path, *resume)
            _wait_running(run, proc)
    except BaseException:
        if isinstance(proc, subprocess.Popen) and proc.poll() is None:  # no trainer left running
            proc.kill()
            proc.wait(timeout=30)
        raise
    finally:
        if isinstance(proc, _Forked) and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        server.stdin.close()
        server.wait(timeout=30)
    # the last resume ends with SIGTERM: a clean save, status "stopped", exit code 143
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, _stderr(proc)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped"
    final = load_checkpoint(run / "checkpoint.h5")
    assert kills == 20
    assert final.meta["progress"]["step"] > 0
    # training made progress across the kills and never went backwards past a saved epoch
    assert epochs_seen == sorted(epochs_seen) and final.meta["progress"]["epoch"] >= epochs_seen[-1]
    assert not list(run.glob(".*.tmp"))  # temp files of interrupted writes are swept on resume
