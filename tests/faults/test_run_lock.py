"""The run lock: one training process per run folder; a dead owner shows as "crashed".

On main two `bihm train --resume RUN` both trained and interleaved their saves, runs killed before
their first checkpoint stayed "created" forever, and the dashboard's Resume only looked at
status.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bihm_app.errors import RunError
from bihm_app.store.checkpoint import load_checkpoint
from bihm_app.store.runs import RunFolder, list_runs
from tests.faults.helpers import ROOT, TINY, bihm_here, child_env, one_error_line, start_child

pytestmark = pytest.mark.faults


def _wait(pred, proc=None, timeout=60.0, what="condition"):
    t0 = time.monotonic()
    while not pred():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"child ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)


def _running(run: Path, pid: int) -> bool:
    try:
        st = json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return False
    return st.get("state") == "running" and st.get("pid") == pid


def test_second_resume_is_refused_naming_the_holder_and_the_dashboard_respects_the_lock(tmp_path):
    root = tmp_path / "runs"
    res = bihm_here("train", *TINY, "--epochs", "1", "--runs-dir", root, "--name", "r")
    assert res.exit_code == 0, res.output
    run = root / "r"
    first = start_child("train", "--resume", "r", "--epochs", "100000", "--runs-dir", root, "--quiet")
    try:
        _wait(lambda: _running(run, first.pid), first, what="the first resume to run")
        epochs_before = load_checkpoint(run / "checkpoint.h5").meta["progress"]["epoch"]
        # a second trainer: one line naming the holder's pid, exit 1, nothing written
        res = bihm_here("train", "--resume", "r", "--epochs", "100000", "--runs-dir", root, "--quiet")
        assert res.exit_code == 1
        line = one_error_line(res.stderr)
        assert f"process {first.pid} " in line and "already being trained" in line, line
        assert _running(run, first.pid)  # status untouched by the refused one
        # the dashboard's Resume asks the same lock
        from bihm_app.tui import launcher

        with pytest.raises(RunError, match=f"process {first.pid} "):
            launcher.launch_resume(root, "r")
        # the list says running (the lock is held)
        assert [s.status for s in list_runs(root)] == ["running"]
        _wait(lambda: load_checkpoint(run / "checkpoint.h5").meta["progress"]["epoch"] > epochs_before + 1, first,
              what="the first trainer to keep saving")  # fmt: skip
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # killed: the kernel released the lock, so the run reads as crashed, and it can be resumed at once
    assert [s.status for s in list_runs(root)] == ["crashed"]
    res = bihm_here("runs", "list", "--runs-dir", root)
    assert "crashed" in res.output
    res = bihm_here("train", "--resume", "r", "--epochs", str(load_checkpoint(run / "checkpoint.h5").meta["progress"]["epoch"] + 1),
                    "--runs-dir", root, "--quiet")  # fmt: skip
    assert res.exit_code == 0, res.output


def test_a_run_killed_before_its_first_checkpoint_reads_as_crashed(tmp_path):
    """Created, lock taken, then SIGKILL before any checkpoint (what a kill during data loading leaves)."""
    root = tmp_path / "runs"
    code = (
        "import os, signal\nfrom pathlib import Path\nfrom bihm_app.store.runs import new_run\n"
        f"run = new_run(Path({str(root)!r}), 'early')\nrun.lock()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    status = RunFolder(root / "early").read_status()
    assert status["state"] == "crashed" and "before its first checkpoint" in status["message"]
    assert [s.status for s in list_runs(root)] == ["crashed"]
    # and the dashboard's runs table (the same summaries) shows it as crashed
    from bihm_app.runner.summaries import TrendCache, load_rows

    assert [r.summary.status for r in load_rows(root, TrendCache())] == ["crashed"]


def test_a_lock_probe_never_makes_a_trainer_fail(tmp_path):
    """`runs list` probes the lock with a shared lock for an instant; a trainer starting at that
    moment retries instead of reporting a holder."""
    from bihm_app.store.runlock import RunLock, lock_holder

    run = tmp_path / "run"
    run.mkdir()
    lock = RunLock(run).acquire()
    lock.release()
    import fcntl

    fd = os.open(run / ".lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a probe that is slow to let go
    try:
        import threading

        threading.Timer(0.2, lambda: (fcntl.flock(fd, fcntl.LOCK_UN))).start()
        lock = RunLock(run).acquire(wait_s=2.0)
        assert lock_holder(run) == (True, f"process {os.getpid()} on {os.uname().nodename}")
        lock.release()
    finally:
        os.close(fd)
    assert lock_holder(run)[0] is False
