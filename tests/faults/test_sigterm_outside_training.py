"""SIGTERM to a `bihm` command outside training (which has its own save-and-stop handler): one line,
exit 143, and the command's clean-up runs (a report's staging folder is removed)."""

from __future__ import annotations

import os
import pytest

from tests.faults.helpers import TINY, bihm_child, bihm_here, child_env


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to oneself")
def test_sigterm_during_a_report_is_one_line_and_leaves_no_staging_folder(tmp_path):
    """Catches the default SIGTERM action (exit 143 without a word, the half-written staging folder
    left in --out, where only the next report would sweep it) and a handler that swallows the signal
    or prints a traceback."""
    assert bihm_here("train", *TINY, "--epochs", "1", "--name", "r").exit_code == 0
    pre = ("import os, signal, time\nimport bihm_app.runner.report as rep\n"
           "def _kill(*a, **k):\n    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(30)\n"
           "rep.training_figures = _kill")  # fmt: skip
    out = tmp_path / "rep"
    proc = bihm_child("report", "r", "--out", out, "--cached-only", "--no-pictures", pre=pre, timeout=60,
                      env=child_env(BIHM_HOME=os.environ["BIHM_HOME"]))  # fmt: skip
    assert proc.returncode == 143, proc.stderr
    assert "terminated (SIGTERM)" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # the staging folder removed, and the --out folder the report had made


@pytest.mark.skipif(os.name != "posix", reason="pipes and SIGTERM")
def test_sigterm_with_stderr_a_closed_pipe_still_exits_143(monkeypatch):
    """`bihm … 2>&1 | tee log` stopped as a whole (systemd, `docker stop`, `timeout`): tee is gone
    when bihm's handler writes its line. Catches the handler's BrokenPipeError replacing SystemExit(143):
    click turned it into exit 1, and a `bihm train` still building its model was left "created" (read as
    crashed) instead of "stopped"."""
    import signal
    import sys

    from bihm_app.cli.app import _terminated

    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w", buffering=1)  # line-buffered, as sys.stderr is
    monkeypatch.setattr(sys, "stderr", stream)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as exc:
            _terminated(signal.SIGTERM, None)
        assert exc.value.code == 143
    finally:
        signal.signal(signal.SIGTERM, before)
        try:
            stream.close()
        except OSError:
            pass
