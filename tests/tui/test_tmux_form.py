"""The new-run form in a real terminal (tmux at 80×24), as a new user meets it: `n` then `q` must
type, not quit; a bad name is refused on screen; leaving a changed form asks; `q` on the runs list
quits. Skipped where tmux is not installed."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.name = f"bihm-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]  # a private server: no other tmux user is affected, or affects us
        subprocess.run([*self.tmux, "-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", "80", "-y", "24",
                        command], check=True, env=env)  # fmt: skip

    def text(self) -> str:
        res = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return res.stdout

    def keys(self, *keys: str) -> None:
        """Type ``keys`` in order (one tmux call: the terminal delivers them in that order)."""
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def wait(self, what: str, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.text()
            if what in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{what!r} not on screen after {timeout:.0f} s:\n{self.text()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


def test_new_run_form_in_tmux_types_q_refuses_a_bad_name_and_asks_before_leaving(tmp_path):
    """Catches `n` then `q` quitting the dashboard (nothing had focus), a bad run name accepted,
    and a changed form discarded without a question — in a real terminal at 80×24."""
    root = tmp_path / "runs"
    env = {**os.environ, "BIHM_HOME": str(tmp_path), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    app = f"{shlex.quote(sys.executable)} -c 'from bihm_app.tui.app import main; main()' --runs-dir {shlex.quote(str(root))}"
    pane = Pane(f"{app}; echo BIHM-APP-EXITED $?; sleep 30", env)
    try:
        pane.wait("No runs yet")
        pane.keys("n")
        pane.wait("run name")
        pane.keys("q")
        text = pane.wait("run name q")
        assert "BIHM-APP-EXITED" not in text
        pane.keys("BSpace", *"../evil name", "C-s")
        text = pane.wait("path separator")
        assert "BIHM-APP-EXITED" not in text
        pane.keys("Escape")
        pane.wait("Discard")
        pane.keys("y")
        pane.wait("No runs yet")
        pane.keys("q")
        pane.wait("BIHM-APP-EXITED 0", timeout=15)
    finally:
        pane.close()
    assert not (root / ".launch").exists() and [p.name for p in tmp_path.iterdir() if p.name != "runs"] == []
