"""`bihm report`: markdown plus PNG figures of one or more runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.runner.evaluation import read_cache

cli = CliRunner()
QUICK = ["--data", "dna", "--layers", "12,6", "--valid-max", "200", "--z-samples", "2000", "--epochs", "2", "--quiet"]
FAST = ["--sweep-points", "30", "--k-sweep", "1,3,10", "--z-samples", "1000"]


def bihm(*args):
    return cli.invoke(app, [str(a) for a in args])


def runs() -> Path:
    return Path(os.environ["BIHM_HOME"]) / "runs"


@pytest.fixture
def two_runs():
    for name, lr in (("ra", "1e-3"), ("rb", "1e-2")):
        res = bihm("train", *QUICK, "--lr", lr, "--name", name)
        assert res.exit_code == 0, res.output
    return ["ra", "rb"]


def _png_ok(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_report_of_two_runs_has_every_figure_as_a_valid_png(two_runs, tmp_path):
    """Catches a figure that is referenced but not written (or not a PNG), a missing section, a K
    sweep that is not cached for the next report or the dashboard, and summary numbers that are
    not the cached ones."""
    out = tmp_path / "rep"
    res = bihm("report", *two_runs, "--out", out, *FAST)
    assert res.exit_code == 0, res.output
    md = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    expected = {"compare-valid.png", "compare-k-sweep.png"} | {
        f"{r}/{f}.png" for r in two_runs for f in ("training", "validation", "log-z", "ess", "samples", "inpaint", "layers")
    } | {f"{r}/k-sweep.png" for r in two_runs}  # fmt: skip
    assert set(linked) == expected
    for rel in linked:
        w, h = _png_ok(out / rel)
        assert w > 20 and h > 10
    for section in ("## summary", "### Training curves", "### Test set", "### Sensitivity to K", "### Pictures", "### Configuration"):
        assert section in md
    assert "| train.lr | 0.01 |" in md and "| train.lr | 0.001 |" in md
    for r in two_runs:
        cache = read_cache(runs() / r)
        assert cache is not None and [e["K"] for e in cache.sweep()] == [1, 3, 10] and cache.z(1000) is not None
        top = max(cache.estimates, key=lambda e: (e["n"], e["K"]))
        assert f"| {r} | dna | 12,6 | bihm | 2 |" in md
        assert f"{top['log_ptilde']:.2f} ± {top['log_ptilde_se']:.2f} (K=10, n=30)" in md

    # a second report takes everything from the cache (nothing recomputed, nothing rewritten)
    stamps = {r: (runs() / r / "eval-test.json").stat().st_mtime_ns for r in two_runs}
    res = bihm("report", "ra", "--out", tmp_path / "again", "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    assert {r: (runs() / r / "eval-test.json").stat().st_mtime_ns for r in two_runs} == stamps
    assert (tmp_path / "again" / "ra" / "k-sweep.png").exists() and not (tmp_path / "again" / "ra" / "samples.png").exists()


def test_cached_only_report_of_an_unevaluated_run_says_how_to_evaluate(two_runs, tmp_path):
    res = bihm("report", "ra", "--out", tmp_path / "r", "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert "bihm eval ra --k-sweep" in md and "k-sweep.png" not in md
    assert read_cache(runs() / "ra") is None


def test_report_bad_input_is_one_line(two_runs, tmp_path):
    res = bihm("report", "ghost", "--out", tmp_path / "r")
    assert res.exit_code == 1 and "ghost" in res.output and "Traceback" not in res.output
    res = bihm("report", "ra", "ra", "--out", tmp_path / "r")
    assert res.exit_code == 1 and "twice" in res.output
    (tmp_path / "f").write_text("x")
    res = bihm("report", "ra", "--out", tmp_path / "f" / "sub", "--cached-only", "--no-pictures")
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_a_damaged_checkpoint_h5_is_a_note_and_best_h5_serves_the_report(two_runs, tmp_path):
    """A truncated checkpoint.h5 (best.h5 intact) stopped the whole report — of every run in it,
    from the dashboard's compare screen too — and left an empty report folder; a missing run left
    one as well (review). Catches both: the report is written from best.h5 with a note naming the
    damaged file, and a refused report creates no folder."""
    ck = runs() / "ra" / "checkpoint.h5"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    res = bihm("report", "ra", "rb", "--out", tmp_path / "r", "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert "checkpoint.h5" in md and "truncated" in md and "## rb" in md
    res = bihm("report", "ra", "ghost", "--out", tmp_path / "none")
    assert res.exit_code == 1 and not (tmp_path / "none").exists()


def test_a_run_stopped_in_its_first_epoch_is_reported_not_a_traceback(two_runs, tmp_path):
    """A run stopped before its first epoch ended saves best_epoch −1 and no best score: the
    report's status line formatted None and raised (a traceback, and a report of several runs lost
    all of them, leaving a half-written folder). Catches that: the report is written, says no epoch
    finished, and reports the other run."""
    from bihm_app.store.checkpoint import load_checkpoint, save_checkpoint
    from bihm_app.store.runs import new_run

    ck = load_checkpoint(runs() / "ra" / "checkpoint.h5")
    meta = dict(ck.meta)
    meta["progress"] = {**meta["progress"], "epoch": 0, "best_epoch": -1, "best_valid": None, "finished": False}
    meta["history"] = {k: [] for k in meta.get("history", {})}
    early = new_run(runs(), "early")
    save_checkpoint(early.checkpoint_path, ck.arrays, meta)
    early.write_status("stopped", epoch=0)
    res = bihm("report", "early", "rb", "--out", tmp_path / "r", "--cached-only", "--no-pictures")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    md = (tmp_path / "r" / "report.md").read_text()
    assert "no epoch finished yet" in md and "## rb" in md
    res = bihm("report", "rb", "early", "rb", "--out", tmp_path / "r2")
    assert res.exit_code == 1 and "'rb' is named twice" in res.output


def test_a_damaged_evaluation_cache_is_a_note_not_silence(two_runs, tmp_path):
    """A damaged eval-test.json was ignored silently: the report said "no cached evaluation" as if
    none had been run. Catches that: the report names the file, says it is ignored and how to
    write it again."""
    (runs() / "ra" / "eval-test.json").write_text("{ not json")
    res = bihm("report", "ra", "--out", tmp_path / "r", "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    md = " ".join((tmp_path / "r" / "report.md").read_text().split())
    assert "eval-test.json: unreadable" in md and "ignored" in md and "bihm eval ra" in md



def test_a_report_killed_half_way_leaves_the_previous_one_whole(two_runs, tmp_path, monkeypatch):
    """A report wrote its figures straight into --out and report.md last: killed (SIGTERM, a full
    disk) while drawing the second run, the folder held the new figures of the first run beside the
    old report.md. Catches that: the report is staged in a hidden folder and moved into place at
    the end, so an interrupted one leaves every file of the previous report as it was and no
    staging folder; a staging folder left by a killed process is swept by the next report."""
    import bihm_app.runner.report as report

    out = tmp_path / "rep"
    assert bihm("report", *two_runs, "--out", out, "--cached-only", "--no-pictures").exit_code == 0
    before = {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert Path("ra/training.png") in before and Path("report.md") in before
    real = report.training_figures

    def killed_at_the_second_run(run_dir, sub, name, notes=None):
        if name == "rb":
            raise SystemExit(143)  # what bihm's SIGTERM handler raises
        return real(run_dir, sub, name, notes)

    with monkeypatch.context() as m:
        m.setattr(report, "training_figures", killed_at_the_second_run)
        res = bihm("report", *two_runs, "--out", out, "--cached-only", "--no-pictures")
    assert res.exit_code == 143
    after = {p.relative_to(out): (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    assert after == before
    dead = out / f"{report.STAGE_PREFIX}999999999.tmp"  # no such process
    (dead / "ra").mkdir(parents=True)
    (dead / "ra" / "training.png").write_bytes(b"half")
    res = bihm("report", "ra", "--out", out, "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    assert not list(out.glob(f"{report.STAGE_PREFIX}*")) and (out / "report.md").read_bytes() != before[Path("report.md")][0]


def test_the_figure_count_is_the_reports_own(tmp_path):
    """`bihm report` printed "wrote report.md and N figures" with N every PNG under --out: with
    `--out .` or a folder holding other pictures, figures of an earlier report that this one did
    not draw, or another report's staging folder, N was too large. Catches that: N is the number
    of figures report.md links to."""
    assert bihm("train", *QUICK, "--name", "ra").exit_code == 0
    out = tmp_path / "rep"
    (out / "ra").mkdir(parents=True)
    Image.new("L", (4, 4)).save(out / "holiday.png")
    Image.new("L", (4, 4)).save(out / "ra" / "samples.png")  # an earlier report's, drawn with pictures
    (out / ".bihm-report-1.tmp").mkdir()  # a live report's staging folder (pid 1 is alive)
    Image.new("L", (4, 4)).save(out / ".bihm-report-1.tmp" / "compare-valid.png")
    res = bihm("report", "ra", "--out", out, "--cached-only", "--no-pictures")
    assert res.exit_code == 0, res.output
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", (out / "report.md").read_text()))
    assert linked and all((out / p).is_file() for p in linked)
    assert f"and {len(linked)} figures" in " ".join(res.output.split()), res.output


def test_a_report_that_cannot_be_written_names_the_reason_not_the_staging_folder(two_runs, tmp_path, monkeypatch):
    """A full disk while drawing said "cannot write …/.bihm-report-1428.tmp/ra/validation.png" — a
    hidden path that no longer exists — and a failed first report left an empty --out folder behind.
    Catches both: one line naming --out and the reason, and no folder where there was none; a
    report of this process writing beside (the dashboard's) keeps its staging folder."""
    import errno

    import bihm_app.runner.report as report

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/x/.bihm-report-1.tmp/ra/training.png")

    def full_as_the_atomic_writer_says(*a, **k):
        from bihm_app.errors import DiskFull

        raise DiskFull("no space left on device while writing /x/.bihm-report-1.tmp/ra/training.png")

    out = tmp_path / "new" / "rep"
    for fault, reason in ((full, "No space left on device"), (full_as_the_atomic_writer_says, "no space left on device")):
        with monkeypatch.context() as m:
            m.setattr(report, "training_figures", fault)
            res = bihm("report", "ra", "--out", out, "--cached-only", "--no-pictures")
        assert res.exit_code == 1 and "Traceback" not in res.output
        line = " ".join(res.output.split())
        assert f"--out {out}: cannot write the report ({reason})" in line and ".bihm-report" not in line, line
        assert not out.exists()
    out.mkdir(parents=True)
    busy = report._staging_folder(out)  # as if another report of this process were writing
    assert bihm("report", "ra", "--out", out, "--cached-only", "--no-pictures").exit_code == 0
    assert busy.is_dir() and (out / "report.md").exists()


def test_two_runs_whose_folders_share_a_name_are_refused_naming_both(tmp_path):
    """`bihm report /a/r /b/r --out X` wrote both runs' figures into X/r, each overwriting the
    other's, and report.md linked the same files under both headings. Catches that: the report is
    refused with one line naming both folders, before anything is computed or written; the same
    folder named twice (by name and by path) is "named twice"."""
    from bihm_app.store.runs import new_run

    a, b = new_run(tmp_path / "a", "r"), new_run(tmp_path / "b", "r")
    for run in (a, b):
        run.write_status("stopped", epoch=0)
    res = bihm("report", a.path, b.path, "--out", tmp_path / "X", "--cached-only", "--no-pictures")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    line = " ".join(res.output.split())
    assert str(a.path) in line and str(b.path) in line and "same folder name" in line, res.output
    assert not (tmp_path / "X").exists()
    new_run(runs(), "rc").write_status("stopped", epoch=0)
    res = bihm("report", "rc", runs() / "rc", "--out", tmp_path / "Y", "--cached-only", "--no-pictures")
    assert res.exit_code == 1 and "named twice" in " ".join(res.output.split()), res.output
    assert not (tmp_path / "Y").exists()
