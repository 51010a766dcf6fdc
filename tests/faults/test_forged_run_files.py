"""Forged or damaged small files of a run folder (hostile review, session 6): status.json with a
date no clock can show or a pid no process can have, and damaged evaluation caches. Each was a
traceback in `bihm runs list`, `bihm report` or `bihm eval --reuse`; now the run is listed and a
damaged cache is unusable (recomputed), never half-read."""

from __future__ import annotations

import json
import math

import pytest

from bihm_app.runner.evaluation import EvalCache, cache_path, read_cache
from bihm_app.runner.formats import age
from bihm_app.store.runs import pid_alive
from tests.faults.helpers import bihm_here
from tests.tui.runs_fixture import make_run


def _status(run, **changes) -> None:
    path = run.path / "status.json"
    status = json.loads(path.read_text())
    status.update(changes)
    path.write_text(json.dumps(status))


@pytest.mark.parametrize("updated", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00"])
def test_runs_list_shows_a_run_whose_status_has_an_impossible_date(tmp_path, updated):
    """Catches "ValueError: year 0 is out of range" (a traceback for the whole listing) from the age
    column of one run whose status.json says it was updated before year 1."""
    root = tmp_path / "runs"
    run = make_run(root, "odd")
    make_run(root, "fine")
    _status(run, updated=updated)
    res = bihm_here("runs", "list", "--runs-dir", root)
    assert res.exit_code == 0, res.output
    assert "odd" in res.stdout and "fine" in res.stdout and "Traceback" not in res.output


@pytest.mark.parametrize("seconds", [1e18, -1e18, float("inf"), float("nan"), None])
def test_age_of_any_number_is_text(seconds):
    assert isinstance(age(seconds, now=0.0), str)


@pytest.mark.parametrize("pid", [10**30, 2**31, -5, True])
def test_a_pid_no_process_can_have_is_not_alive_and_the_run_is_not_corrupt(tmp_path, pid):
    """Catches "OverflowError: Python int too large to convert to C long" from os.kill for a forged
    pid: `bihm report` was a traceback and `runs list` called the (healthy) run corrupt."""
    assert pid_alive(pid) is False
    root = tmp_path / "runs"
    run = make_run(root, "forged")
    _status(run, state="running", pid=pid)
    res = bihm_here("runs", "list", "--runs-dir", root, "--json")
    assert res.exit_code == 0, res.output
    row = [r for r in json.loads(res.stdout) if r["name"] == "forged"][0]
    assert row["status"] != "corrupt", row


def _good_cache() -> dict:
    est = {"K": 10, "n": 100, "log_ptilde": -90.0, "log_ptilde_se": 0.5, "log_p": -88.0, "log_p_se": 0.4,
           "ess": 0.3, "ess_se": 0.01, "seed": 0, "seconds": 1.5}  # fmt: skip
    sub = dict(est, K=100, subset_seed=3, subset_of=1000)
    z = {"samples": 1000, "inner": 1, "mean": -5.0, "se": 0.2, "seed": 0, "seconds": 2.0}
    return EvalCache("test", "bmnist", "best.h5", 3, 30, "ab", [est, sub], [z]).to_dict()


DAMAGES = {
    "an estimate without log_ptilde_se": lambda d: d["estimates"][0].pop("log_ptilde_se"),
    "log_p_se a string": lambda d: d["estimates"][0].update(log_p_se="x"),
    "ess missing": lambda d: d["estimates"][0].pop("ess"),
    "ess a string": lambda d: d["estimates"][0].update(ess="x"),
    "K a bool": lambda d: d["estimates"][0].update(K=True),
    "n a float": lambda d: d["estimates"][0].update(n=1.5),
    "subset_seed a string": lambda d: d["estimates"][1].update(subset_seed="a"),
    "log_ptilde infinite": lambda d: d["estimates"][0].update(log_ptilde=float("inf")),
    "2 log Z samples infinite": lambda d: d["log_z2"][0].update(samples=float("inf")),
    "2 log Z mean NaN": lambda d: d["log_z2"][0].update(mean=float("nan")),
    "2 log Z inner 0": lambda d: d["log_z2"][0].update(inner=0),
    "an estimate that is a list": lambda d: d["estimates"].append([1, 2]),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_evaluation_cache_is_unusable_not_half_read(tmp_path, damage):
    """Each damage made `bihm eval --reuse` or `bihm report` fail inside the code that prints the
    cache (KeyError, TypeError, ValueError of a format code, OverflowError converting an infinite
    sample count, a comparison of mixed subset seeds). The reader must refuse the whole file (then
    it is recomputed and rewritten); the intact file must still be read (the test's control)."""
    path = cache_path(tmp_path)
    d = _good_cache()
    path.write_text(json.dumps(d))
    good = read_cache(tmp_path)
    assert good is not None and len(good.estimates) == 2 and good.sweep()
    DAMAGES[damage](d)
    path.write_text(json.dumps(d))
    assert read_cache(tmp_path) is None


def test_a_deeply_nested_evaluation_cache_is_unusable(tmp_path):
    """Catches RecursionError (not caught: a traceback) from json.loads of 50,000 nested lists."""
    cache_path(tmp_path).write_text('{"format": "bihm-eval", "estimates": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert read_cache(tmp_path) is None


def test_an_estimate_of_a_single_point_with_nan_standard_errors_stays_usable(tmp_path):
    """The other side: one point has no standard error (NaN, as the estimators write it), which
    must not make a genuine cache unusable."""
    d = _good_cache()
    d["estimates"][0].update(n=1, log_ptilde_se=math.nan, log_p_se=math.nan, ess_se=math.nan)
    cache_path(tmp_path).write_text(json.dumps(d))
    assert read_cache(tmp_path) is not None


def test_a_metrics_file_cut_short_is_damaged_not_zeros(tmp_path):
    """A SWMR reader does not check a file's end: a metrics file cut to half its size read rows of
    zeros past the cut — "best log p~* 0.00", "epoch 0", a compare chart stretched to 0 (dashboard
    review). Catches rows of zeros taken for data; the file must be skipped with a warning."""
    from bihm_app.store.metrics import read_run_metrics

    run = make_run(tmp_path / "runs", "cut", epochs=6, per_epoch=40)
    path = run.path / "metrics-1.h5"
    assert len(read_run_metrics(run.path).epochs) == 6  # the control: whole, it reads
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    m = read_run_metrics(run.path)
    assert len(m.updates) == 0 and len(m.epochs) == 0
    assert any("metrics-1.h5" in w and "cut short" in w for w in m.warnings), m.warnings


def test_a_forged_running_status_without_lock_or_start_time_is_not_running(tmp_path):
    """status.json saying "running" with the pid of some live process and no start time, and no
    lock file, was believed: the dashboard's `x` sent SIGINT to that unrelated process. Catches
    trusting a bare pid where its start time could be checked. Also: a state that is not text is a
    corrupt run, not "['running']" in the table."""
    import os
    import socket

    from bihm_app.store.runs import list_runs

    root = tmp_path / "runs"
    run = make_run(root, "forged")
    status = json.loads((run.path / "status.json").read_text())
    status.update(state="running", pid=os.getppid(), host=socket.gethostname())
    status.pop("pid_start", None)
    (run.path / "status.json").write_text(json.dumps(status))
    assert not (run.path / ".lock").exists()
    assert run.read_status()["state"] == "crashed"
    odd = make_run(root, "odd")
    _status(odd, state=["running"])
    boast = make_run(root, "boast")
    _status(boast, best_valid=1e10)  # a log-probability above 0 cannot be: the checkpoint's stands
    rows = {r.name: r for r in list_runs(root)}
    assert rows["forged"].status == "crashed"
    assert rows["boast"].best_valid is not None and rows["boast"].best_valid < 0
    assert rows["odd"].status == "corrupt" and "status.json" in rows["odd"].error


@pytest.mark.parametrize("text", ["boom \x1b]0;HACKED\x07\x1b[2J\x1b[H after", "a\x9b31mb", "x\u202eevil"])
def test_text_from_files_never_reaches_the_terminal_as_control_codes(text):
    """A status message or a log line holding escape sequences cleared the dashboard's screen and
    set the terminal's title (review). Catches any C0/C1 control or bidirectional override left in
    what is shown, and a 5,000-character message shown whole."""
    from bihm_app.runner.formats import printable
    from bihm_app.tui.format import escape

    for shown in (printable(text), escape(text)):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in shown), repr(shown)
        assert "\ufffd" in shown
    assert len(printable("W" * 5000, 300)) == 300
