"""The 2 log Z a command prints is the one the user asked for (``--z-samples``), not a cached one
with a different number of samples; a more precise cached estimate is shown beside it, labelled."""

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.runner import repro
from bihm_app.runner.evaluation import read_cache

runner = CliRunner()
QUICK = ["--data", "dna", "--layers", "12,6", "--batch", "100", "--valid-max", "200", "--z-samples", "0", "--quiet"]


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def run() -> Path:
    res = bihm("train", *QUICK, "--epochs", "1", "--name", "zs")
    assert res.exit_code == 0, res.output
    return Path(os.environ["BIHM_HOME"]) / "runs" / "zs"


def _z_line(text: str) -> tuple[float, float, int]:
    m = re.search(r"^2 log Z = (-?[\d.]+) ± ([\d.]+)\s+\(([\d,]+) samples", text, re.M)
    assert m, text
    return float(m.group(1)), float(m.group(2)), int(m.group(3).replace(",", ""))


def test_eval_prints_the_2_log_z_of_the_samples_asked_for(run):
    """Catches the bug of the review: `bihm eval --z-samples 1e5` computed 10⁵ samples, then printed
    (and used for log p*(x)) the cached estimate of 10⁶ samples. On today's main the second eval
    prints "4,000 samples" and the cached mean; here it must print the 400-sample estimate it just
    cached, and show the 4,000-sample one on a separate, labelled line."""
    big = bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "4000")
    assert big.exit_code == 0, big.output
    assert _z_line(big.stdout)[2] == 4000

    res = bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "400")
    assert res.exit_code == 0, res.output
    mean, se, samples = _z_line(res.stdout)
    now = next(z for z in read_cache(run).log_z2 if z["samples"] == 400)  # what this call computed
    assert samples == 400 and (mean, se) == (round(now["mean"], 3), round(now["se"], 3))
    assert "also cached" in res.stdout and "4,000 samples" in res.stdout
    # log p*(x) uses the 2 log Z printed, not the cached one
    est = read_cache(run).estimate(1, 20, 0)
    star = float(re.search(r"log p\*\(x\) = log p̃\*\(x\) − 2 log Z = (-?[\d.]+)", res.stdout).group(1))
    assert star == pytest.approx(est["log_ptilde"] - now["mean"], abs=0.006)

    js = json.loads(bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "400", "--json").stdout)
    assert js["log_z2"]["samples"] == 400 and js["log_z2"]["cached"] is False
    assert js["log_z2_cached_more_samples"]["samples"] == 4000


def test_reuse_takes_the_most_precise_cached_2_log_z_and_says_so(run):
    """Catches --reuse printing a cached estimate without saying it is cached (or how many samples
    it has), and --reuse recomputing although an estimate with at least --z-samples is cached."""
    assert bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "4000").exit_code == 0
    before = (run / "eval-test.json").stat().st_mtime_ns
    res = bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "400", "--reuse")
    assert res.exit_code == 0, res.output
    assert _z_line(res.stdout)[2] == 4000 and "4,000 samples, inner 1, cached" in res.stdout
    assert (run / "eval-test.json").stat().st_mtime_ns == before


def test_report_computes_2_log_z_when_the_cache_has_fewer_samples_than_asked(run, tmp_path):
    """Catches `bihm report --z-samples N` showing a cached 2 log Z of fewer samples than N (it took
    any cached estimate, whatever its size)."""
    assert bihm("eval", "zs", "-K", "1", "--n", "20", "--z-samples", "100").exit_code == 0
    res = bihm("report", "zs", "--out", tmp_path / "rep", "--k-sweep", "1,3,10", "--sweep-points", "20",
               "--z-samples", "500", "--no-pictures")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(z["samples"] for z in read_cache(run).log_z2) == [100, 500]
    assert "500 samples, inner 1" in (tmp_path / "rep" / "report.md").read_text()


def test_repro_note_gives_the_samples_of_the_2_log_z_in_the_table():
    """Catches the repro table's note claiming "2 log Z from 100,000 samples" (the --z-samples asked
    for) when the groups' 2 log Z came from a cache with more samples."""
    settings = repro.EvalSettings(points=[(10, 0)], z_samples=100_000)
    z = {"samples": 1_000_000, "inner": 1, "mean": -1.0, "se": 0.01}
    groups = [repro.GroupResult("adult", [], z=z), repro.GroupResult("dna", [], z=dict(z, samples=100_000))]
    (note,) = [n for n in repro.comparison_table(repro.ReproResult("uci", groups, settings, None)).notes if "2 log Z from" in n]
    assert "adult 1,000,000" in note and "dna 100,000" in note and "at least the 100,000" in note
    same = repro.ReproResult("uci", [repro.GroupResult("dna", [], z=dict(z, samples=100_000))], settings, None)
    (note,) = [n for n in repro.comparison_table(same).notes if "2 log Z from" in n]
    assert note.startswith("2 log Z from 100,000 samples (inner 1);")
