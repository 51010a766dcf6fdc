"""`bihm ckpt show|verify|compare` and `bihm runs list` through Typer's CliRunner."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from bihm_app.cli import ckpt_cmd, runs_cmd
from bihm_app.cli.common import runs_root
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import new_run
from tests.store.helpers import chunk_offset, flip_byte, make_arrays, make_meta

runner = CliRunner()


@pytest.fixture
def runs(tmp_path):
    """Two finished runs (different learning rates) and a corrupt one, under $BIHM_HOME/runs."""
    root = runs_root()
    for name, lr, epoch in [("alpha", 1e-3, 4), ("beta", 3e-4, 6)]:
        run = new_run(root, name)
        meta = make_meta(epoch=epoch, step=epoch * 40, lr=lr)
        save_checkpoint(run.checkpoint_path, make_arrays(), meta)
        save_checkpoint(run.best_path, make_arrays(), meta)
        run.write_status("finished", epoch=epoch)
    bad = new_run(root, "broken")
    save_checkpoint(bad.checkpoint_path, make_arrays(), make_meta())
    data = bad.checkpoint_path.read_bytes()
    bad.checkpoint_path.write_bytes(data[:-1000])
    return root


def _one_line_error(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_show_a_run(runs):
    r = runner.invoke(ckpt_cmd.app, ["show", "beta"])
    assert r.exit_code == 0, r.output
    assert "best.h5" in r.stdout and "bars" in r.stdout and "6,3" in r.stdout
    assert "210" in r.stdout  # parameters of the 12-6-3 BiHM
    assert "-14.00 ± 0.50" in r.stdout  # last valid log p~* with its standard error
    assert re.search(r"progress +6(/\d+)? epochs done, step 240", r.stdout), r.stdout  # 6 finished epochs (runner/progress.py)


def test_show_json(runs):
    r = runner.invoke(ckpt_cmd.app, ["show", "alpha", "--latest", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["path"].endswith("alpha/checkpoint.h5")
    assert doc["parameters"]["total"] == 210 and doc["progress"]["epoch"] == 4
    assert doc["metrics"]["valid_log_ptilde"]["best"] == -16.0
    assert doc["metrics"]["valid_log_p"]["last_se"] == 0.25
    assert doc["arrays"]["params"]["count"] == 9


def test_show_bad_file_is_one_line(runs, tmp_path):
    _one_line_error(runner.invoke(ckpt_cmd.app, ["show", "broken"]), "broken", "truncated")
    _one_line_error(runner.invoke(ckpt_cmd.app, ["show", str(tmp_path / "nope.h5")]), "no such file")
    _one_line_error(runner.invoke(ckpt_cmd.app, ["show", "nosuchrun"]), "no run named")
    txt = tmp_path / "x.h5"
    txt.write_text("hello")
    _one_line_error(runner.invoke(ckpt_cmd.app, ["show", str(txt)]), "not an HDF5 file")


def test_verify_good_files_and_runs(runs):
    r = runner.invoke(ckpt_cmd.app, ["verify", "alpha", str(runs / "beta" / "best.h5")])
    assert r.exit_code == 0, r.output
    headers = [ln for ln in r.stdout.splitlines() if ln.startswith(("✓ /", "✗ /"))]
    assert len(headers) == 3 and all(h.startswith("✓") for h in headers) and "✗" not in r.stdout


def test_verify_reports_each_failure_and_exits_1(runs):
    flip_byte(runs / "alpha" / "best.h5", chunk_offset(runs / "alpha" / "best.h5", "params/p_prior"))
    r = runner.invoke(ckpt_cmd.app, ["verify", "alpha", "beta", "broken"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert "✗" in r.stdout and "SHA-256 mismatch" in r.stdout and "truncated" in r.stdout
    assert "2 of 5 checkpoint(s) failed" in r.stderr
    r = runner.invoke(ckpt_cmd.app, ["verify", "--json", "beta", "broken"])
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [d["ok"] for d in doc] == [True, True, False]


def test_compare_two_runs(runs):
    r = runner.invoke(ckpt_cmd.app, ["compare", "alpha", "beta"])
    assert r.exit_code == 0, r.output
    lr_line = next(ln for ln in r.stdout.splitlines() if "config.train.lr" in ln)
    assert "≠" in lr_line and "0.001" in lr_line and "0.0003" in lr_line
    k_line = next(ln for ln in r.stdout.splitlines() if "config.train.K" in ln)
    assert "≠" not in k_line
    assert "-16.00 ± 0.50" in r.stdout and "-14.00 ± 0.50" in r.stdout
    assert "valid log p̃* by epoch" in r.stdout  # the overlaid chart
    r = runner.invoke(ckpt_cmd.app, ["compare", "alpha", "beta", "--diff-only", "--no-chart"])
    assert "config.train.K" not in r.stdout and "config.train.lr" in r.stdout and "by epoch" not in r.stdout


def test_compare_json(runs):
    r = runner.invoke(ckpt_cmd.app, ["compare", "alpha", "beta", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["config_differences"] == {"config.train.lr": [0.001, 0.0003]}
    assert [x["label"] for x in doc["runs"]] == ["alpha", "beta"]
    assert doc["runs"][1]["metrics"]["valid_log_ptilde"] == {"value": -14.0, "se": 0.5, "epoch": 6}
    assert doc["runs"][0]["history"]["valid_log_p"][0] is None  # NaN -> null in JSON


def test_compare_errors(runs):
    _one_line_error(runner.invoke(ckpt_cmd.app, ["compare", "alpha"]), "at least two")
    _one_line_error(runner.invoke(ckpt_cmd.app, ["compare", "alpha", "broken"]), "broken", "truncated")


def test_runs_list_table_and_json(runs):
    r = runner.invoke(runs_cmd.app, ["list"])
    assert r.exit_code == 0, r.output
    for word in ("alpha", "beta", "broken", "finished", "corrupt", "-14.00", "bars"):
        assert word in r.stdout
    assert "truncated" in r.stdout  # the corrupt run's reason
    doc = json.loads(runner.invoke(runs_cmd.app, ["list", "--json"]).stdout)
    by = {d["name"]: d for d in doc}
    assert by["beta"]["best_valid"] == -14.0 and by["beta"]["layers"] == [6, 3]
    assert by["broken"]["status"] == "corrupt" and by["broken"]["error"]


def test_runs_list_empty(tmp_path):
    r = runner.invoke(runs_cmd.app, ["list", "--runs-dir", str(tmp_path / "none")])
    assert r.exit_code == 0 and "no runs" in r.stdout


def test_registered_in_the_main_app(runs):
    from bihm_app.cli.app import app

    r = runner.invoke(app, ["runs", "list", "--json"])
    assert r.exit_code == 0 and {d["name"] for d in json.loads(r.stdout)} == {"alpha", "beta", "broken"}
    r = runner.invoke(app, ["ckpt", "verify", "beta"])
    assert r.exit_code == 0, r.output


def test_format_age_is_one_rule_for_both_front_ends():
    """Catches the CLI and the dashboard drifting apart again (90 s was '1m' in one, '2m' in the other)."""
    from bihm_app.runner.formats import age
    from bihm_app.tui import format as tui_format

    assert [age(s) for s in (5, 90, 125, 7300, 200_000, None)] == ["5s", "1m", "2m", "2h", "2d", "—"]
    assert tui_format.age is age


def test_runs_list_shows_an_empty_run_folder_as_empty_with_its_reason(runs):
    """Catches a run folder with nothing saved (only its lock file) listed as "unknown" with no
    reason: its status is "empty" in the table and in --json, with one line saying nothing was saved."""
    (runs / "stillborn").mkdir()
    (runs / "stillborn" / ".lock").write_text("")
    r = runner.invoke(runs_cmd.app, ["list"])
    assert r.exit_code == 0, r.output
    row = next(ln for ln in r.stdout.splitlines() if "stillborn" in ln and "│" in ln)
    assert "empty" in row and "unknown" not in r.stdout, r.stdout
    assert "stillborn: nothing saved yet (only a lock file)" in r.stdout
    by = {d["name"]: d for d in json.loads(runner.invoke(runs_cmd.app, ["list", "--json"]).stdout)}
    assert by["stillborn"]["status"] == "empty" and by["stillborn"]["error"] is None and by["stillborn"]["note"]
    assert by["alpha"]["note"] is None
