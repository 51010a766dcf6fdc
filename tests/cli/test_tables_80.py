"""Every `bihm` table at 80 columns (issue #15): columns are dropped, abbreviated or split over
several tables, never squeezed — every header and every value shown is whole.

On main before this, `bihm runs list` with a 62-character run name collapsed the other columns
and showed the status as `stopp…`; the helper in table_check.py reads the cells back and fails
on any value that is cut or any header that is not whole.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from bihm_app.cli import common, runs_cmd
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import list_runs, new_run, runs_root
from tests.cli.table_check import assert_whole
from tests.store.helpers import make_arrays, make_meta

runner = CliRunner()
LONG = "bmnist-300x200x100x75x50x35x30x25x20x15x10x10-20261126-051556"  # the old default name


@pytest.fixture
def width(request, monkeypatch):
    """The CLI console's width for one test (the console reads COLUMNS only when it is created)."""
    monkeypatch.setattr(common.out, "width", request.param)
    return request.param


@pytest.fixture
def runs():
    """A run with the old 62-character default name (stopped), a finished and a crashed one."""
    root = runs_root()
    for name, state, epoch in [(LONG, "stopped", 4), ("bars-2L6-1126a", "finished", 6), ("crash", "crashed", 2)]:
        run = new_run(root, name)
        save_checkpoint(run.checkpoint_path, make_arrays(), make_meta(epoch=epoch, step=40 * epoch))
        run.write_status(state, epoch=epoch)
        status = json.loads(run.status_path.read_text())  # three days old: an age that does not tick
        status["updated"] = (datetime.now(timezone.utc) - timedelta(days=3, hours=1)).isoformat()
        run.status_path.write_text(json.dumps(status))
    return root


RUN_COLUMNS = {"name": None, "status": None, "data": None, "layers": None, "method": None, "epoch": None,
               "best valid log p̃*": "best p̃*", "age": None}  # fmt: skip


@pytest.mark.parametrize("width", [80, 100, 160], indirect=True)
def test_runs_list_shows_whole_values_at_any_width(runs, width):
    res = runner.invoke(runs_cmd.app, ["list"])
    assert res.exit_code == 0, res.output
    expected = [[r.name, r.status, "bars", "6,3", "bihm", str(r.epoch), f"{r.best_valid:.2f}", "3d"]
                for r in list_runs(runs)]  # fmt: skip
    assert {r[1] for r in expected} == {"stopped", "finished", "crashed"}
    shown = assert_whole(res.stdout, width, RUN_COLUMNS, expected, always=("name", "status"))
    if width >= 160:
        assert shown == list(RUN_COLUMNS)
    else:
        assert "not shown at" in res.stdout  # what was left out is said
