"""End to end with a real training child: the form starts `bihm train`, the run screen tails its
metrics file, and Stop (SIGINT) makes it save a checkpoint and exit with 130."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bihm_app.tui.app import make_app
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from textual.widgets import Input

from tests.tui.test_screens import wait_for


def _train_cli_works() -> bool:
    try:
        res = subprocess.run([sys.executable, "-m", "bihm_app", "train", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


@pytest.mark.slow
async def test_form_launches_real_training_which_stops_cleanly_on_sigint(tmp_path):
    """Catches a form that does not start `bihm train`, a run view that does not follow the child's
    metrics, and a Stop that does not make the child save a checkpoint and exit 130."""
    if not _train_cli_works():  # checked here, not at collection (an interpreter start per worker)
        pytest.skip("the train command is not available")
    root = tmp_path / "runs"
    app = make_app(root, cursor_blink=False)
    async with app.run_test(size=(100, 32)) as pilot:
        app.action_new_run()
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.query("#f-layers"))
        form = app.screen
        form.query_one("#f-layers", Input).value = "8,4"
        form.query_one("#f-K", Input).value = "2"
        form.query_one("#f-epochs", Input).value = "20"  # long enough that Stop lands mid-training (an epoch takes ~1 s)
        form.query_one("#f-name", Input).value = "real"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        screen = app.screen
        proc = app.children_procs["real"]
        # the child writes status.json (running) and its metrics file; the screen tails it
        await wait_for(pilot, lambda: screen.series is not None and screen.series.step > 0, timeout=90)
        assert screen.redraws >= 1
        await wait_for(pilot, lambda: not screen.query_one("#stop").disabled, timeout=30)
        await pilot.press("x")
        await wait_for(pilot, lambda: proc.poll() is not None, timeout=60)
        rc = proc.returncode
        assert rc == 130, (root / ".launch" / "real.log").read_text()[-2000:]
        assert (root / "real" / "checkpoint.h5").exists()
        await wait_for(pilot, lambda: screen._status.get("state") == "stopped", timeout=10)
