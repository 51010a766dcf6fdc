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
