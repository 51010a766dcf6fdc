"""`bihm eval --k-sweep` and the evaluation cache in the run folder."""

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.runner.evaluation import cache_for_checkpoint, read_cache, run_cache

runner = CliRunner()
QUICK = ["--data", "dna", "--layers", "12,6", "--batch", "100", "--valid-max", "200", "--z-samples", "0", "--quiet"]


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


def runs_dir() -> Path:
    return Path(os.environ["BIHM_HOME"]) / "runs"


@pytest.fixture
def run() -> Path:
    res = bihm("train", *QUICK, "--epochs", "1", "--name", "sw")
    assert res.exit_code == 0, res.output
    return runs_dir() / "sw"


def test_k_sweep_prints_the_table_writes_the_plot_and_caches_every_estimate(run):
    """Catches a sweep that is not written to the run folder (report and dashboard would recompute),
    a cache that loses the SEs or settings, or a plot that is not a PNG."""
    res = bihm("eval", "sw", "--k-sweep", "-K", "1,3,10", "--n", "50", "--z-samples", "1000")
    assert res.exit_code == 0, res.output
    assert "log p*(x)" in res.stdout and "k-sweep-test.png" in res.stdout
    cache = read_cache(run)
    assert cache is not None and cache.checkpoint == "best.h5" and cache.data == "dna" and cache.split == "test"
    assert [(e["K"], e["n"]) for e in cache.sweep()] == [(1, 50), (3, 50), (10, 50)]
    for e in cache.estimates:
        assert e["log_ptilde_se"] > 0 and e["log_p_se"] > 0 and 0 < e["ess"] <= 1 and e["seed"] == 0
    assert cache.estimates[0]["log_p"] == pytest.approx(cache.estimates[0]["log_ptilde"])  # K = 1: the same estimate
    (z,) = cache.log_z2
    assert z["samples"] == 1000 and z["inner"] == 1 and z["se"] > 0
    assert run_cache(run) is not None  # it belongs to the current best.h5
    with Image.open(run / "k-sweep-test.png") as im:
        im.verify()
    with Image.open(run / "k-sweep-test.png") as im:
        assert im.format == "PNG" and im.size == (800, 480)

    # a second evaluation merges into the file; --reuse takes cached values without recomputing
    res = bihm("eval", "sw", "-K", "30", "--n", "50", "--z-samples", "0", "--json")
    assert res.exit_code == 0, res.output
    assert [e["K"] for e in read_cache(run).sweep()] == [1, 3, 10, 30]
    before = (run / "eval-test.json").stat().st_mtime_ns
    res = bihm("eval", "sw", "-K", "3,30", "--n", "50", "--z-samples", "1000", "--reuse", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [e["K"] for e in out["estimates"]] == [3, 30] and out["cache"] is None
    assert out["estimates"][0]["log_ptilde"] == cache.estimates[1]["log_ptilde"]
    assert (run / "eval-test.json").stat().st_mtime_ns == before


def test_the_cache_of_a_rewritten_checkpoint_is_stale(run):
    """Catches the dashboard or report showing numbers of parameters the run no longer has."""
    res = bihm("eval", "sw", "--which", "latest", "-K", "2", "--n", "20", "--z-samples", "0")
    assert res.exit_code == 0, res.output
    assert read_cache(run, checkpoint="checkpoint.h5") is not None and read_cache(run) is None  # best's file untouched
    assert cache_for_checkpoint(run / "checkpoint.h5") is not None
    assert bihm("train", "--resume", "sw", "--epochs", "2", "--quiet").exit_code == 0
    assert cache_for_checkpoint(run / "checkpoint.h5") is None
    res = bihm("eval", "sw", "--which", "latest", "-K", "5", "--n", "20", "--z-samples", "0")
    assert res.exit_code == 0
    assert [e["K"] for e in read_cache(run, checkpoint="checkpoint.h5").estimates] == [5]  # the old entry dropped


def test_k_sweep_bad_input_is_one_line(run, tmp_path):
    res = bihm("eval", "sw", "--k-sweep", "-K", "1,x")
    assert res.exit_code == 1 and "-K '1,x' is not" in res.output and "Traceback" not in res.output
    (tmp_path / "a-file").write_text("x")
    res = bihm("eval", "sw", "--k-sweep", "-K", "1,2", "--n", "10", "--z-samples", "0", "--plot", tmp_path / "a-file" / "p.png")
    assert res.exit_code == 1 and "Traceback" not in res.output and "a-file" in res.output


def test_fewer_points_than_the_split_are_a_seeded_random_subset(run):
    """`--n 50` evaluates 50 test points drawn at random with --seed, recorded with the estimate
    (subset_seed, subset_of), not the first 50 (bmnist's test split is sorted by class). An entry
    cached before on the first 50 points (no subset_seed) is recomputed, not reused; another seed
    draws other points. Catches the first-n slice and a cache that mixes the two."""
    from bihm_app.data import load_dataset
    from bihm_app.runner.evaluation import write_cache

    size = load_dataset("dna").size("test")
    res = bihm("eval", "sw", "-K", "2", "--n", "50", "--z-samples", "0", "--json")
    assert res.exit_code == 0, res.output
    (e,) = json.loads(res.stdout)["estimates"]
    assert e["n"] == 50 and e["subset_seed"] == 0 and e["subset_of"] == size
    cache = read_cache(run)
    old = {k: v for k, v in cache.estimates[0].items() if not k.startswith("subset_")} | {"log_ptilde": 123.0}
    cache.estimates = [old]  # as bihm-app wrote it before: the first 50 points
    write_cache(run, cache)
    res = bihm("eval", "sw", "-K", "2", "--n", "50", "--z-samples", "0", "--reuse", "--json")
    assert res.exit_code == 0, res.output
    (again,) = json.loads(res.stdout)["estimates"]
    assert again["log_ptilde"] == e["log_ptilde"] and again["subset_seed"] == 0  # recomputed: the same points and seed
    res = bihm("eval", "sw", "-K", "2", "--n", "50", "--z-samples", "0", "--seed", "1", "--json")
    (other,) = json.loads(res.stdout)["estimates"]
    assert other["subset_seed"] == 1 and other["log_ptilde"] != e["log_ptilde"]
