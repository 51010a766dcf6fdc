"""Recovery that tells the truth.

On main: a truncated checkpoint.h5 beside a good best.h5 made --resume fail; NaN parameters were
saved, passed `ckpt verify`, and `bihm eval` printed `nan ± nan` with exit code 0; divergence before
the first save blamed a checkpoint.h5 that did not exist; every attempt left a metrics file (32
after 30 kills).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from bihm_app.engine.training import StepResult, Trainer
from bihm_app.errors import CheckpointError
from bihm_app.store import checkpoint as ck
from bihm_app.store.checkpoint import load_checkpoint, save_checkpoint, verify_checkpoint
from bihm_app.store.metrics import MetricsWriter, metrics_files, read_run_metrics
from tests.faults.helpers import TINY, bihm_here, flat, one_error_line
from tests.store.helpers import make_arrays, make_meta

pytestmark = pytest.mark.faults


@pytest.fixture
def trained(tmp_path):
    root = tmp_path / "runs"
    res = bihm_here("train", *TINY, "--epochs", "2", "--runs-dir", root, "--name", "t")
    assert res.exit_code == 0, res.output
    return root, root / "t"


def _nan_params(path: Path, monkeypatch) -> None:
    """Rewrite the checkpoint at ``path`` with one NaN parameter (bypassing the refusal)."""
    c = load_checkpoint(path)
    arrays = dict(c.arrays)
    arrays["params/p_prior"] = arrays["params/p_prior"].copy()
    arrays["params/p_prior"][0] = np.nan
    with monkeypatch.context() as m:
        m.setattr(ck, "nonfinite", lambda arrays: None)
        save_checkpoint(path, arrays, c.meta)


def test_resume_falls_back_from_a_truncated_checkpoint_to_best_and_says_so(trained):
    root, run = trained
    data = (run / "checkpoint.h5").read_bytes()
    (run / "checkpoint.h5").write_bytes(data[: len(data) // 2])
    res = bihm_here("train", "--resume", "t", "--epochs", "3", "--runs-dir", root)
    assert res.exit_code == 0, res.output
    text = flat(res.output)
    assert "truncated" in text and "resuming from best.h5 (epoch" in text and "instead" in text
    assert load_checkpoint(run / "checkpoint.h5").meta["progress"]["epoch"] == 3


def test_nan_parameters_are_never_saved_are_reported_by_verify_and_fall_back(trained, monkeypatch, tmp_path):
    root, run = trained
    arrays, meta = make_arrays(), make_meta()
    arrays["params/q_weights.1"] = arrays["params/q_weights.1"].copy()
    arrays["params/q_weights.1"][0, 0] = np.inf
    with pytest.raises(CheckpointError, match=r"refusing to save: params/q_weights.1 has 1 non-finite value \(NaN/inf\)"):
        save_checkpoint(tmp_path / "x.h5", arrays, meta)
    assert not (tmp_path / "x.h5").exists()
    # a file that holds NaN anyway (written by something else): verify says so, eval and resume refuse it
    _nan_params(run / "checkpoint.h5", monkeypatch)
    report = verify_checkpoint(run / "checkpoint.h5")
    assert not report.ok and "params/p_prior has 1 non-finite value" in report.error
    res = bihm_here("ckpt", "verify", run / "checkpoint.h5")
    assert res.exit_code == 1 and "non-finite" in flat(res.output)
    res = bihm_here("eval", "t", "--which", "latest", "--runs-dir", root, "-K", "1", "--z-samples", "0")
    assert res.exit_code == 1 and "non-finite" in one_error_line(res.stderr)
    res = bihm_here("train", "--resume", "t", "--epochs", "3", "--runs-dir", root)
    assert res.exit_code == 0 and "resuming from best.h5" in flat(res.output), res.output


def test_eval_exits_nonzero_on_non_finite_estimates(trained):
    """Finite but enormous weights overflow the logits: the estimates are NaN, so eval fails."""
    root, run = trained
    c = load_checkpoint(run / "best.h5")
    arrays = {k: (np.full_like(v, 3e38) if "weights" in k else v) for k, v in c.arrays.items()}
    save_checkpoint(run / "best.h5", arrays, c.meta)
    res = bihm_here("eval", "t", "--runs-dir", root, "-K", "1,10", "--z-samples", "100", "--n", "50")
    assert res.exit_code == 1, res.output
    line = one_error_line(res.stderr)
    assert "non-finite estimates" in line and "best.h5" in line
    res = bihm_here("eval", "t", "--runs-dir", root, "-K", "1", "--z-samples", "0", "--n", "50", "--json")
    assert res.exit_code == 1 and "non-finite" in res.stderr


def _diverge_after(monkeypatch, n_finite: int) -> None:
    """Make every training step after the first ``n_finite`` report NaN."""
    real, count = Trainer.step, [0]

    def step(self, x):
        res = real(self, x)
        count[0] += 1
        return res if count[0] <= n_finite else StepResult(res.objective * float("nan"), False)

    monkeypatch.setattr(Trainer, "step", step)


@pytest.mark.parametrize("n_finite", [0, 20])
def test_the_divergence_message_names_only_files_that_exist(tmp_path, monkeypatch, n_finite):
    root = tmp_path / "runs"
    _diverge_after(monkeypatch, n_finite)
    res = bihm_here("train", *TINY, "--epochs", "5", "--runs-dir", root, "--name", "d")
    monkeypatch.undo()
    assert res.exit_code == 1 and "Traceback" not in res.output
    rollbacks = [ln for ln in res.stderr.splitlines() if ln.startswith("NaN/inf detected: rolled back")]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(rollbacks) == 5 and len(errors) == 1, res.stderr
    line = errors[0]
    assert "training diverged (NaN/inf) 6 times" in line
    named = [w.rstrip(";.,") for w in line.split() if w.endswith((".h5", ".h5;", ".h5."))]
    for p in named:
        assert Path(p).exists(), line
    if n_finite == 0:
        assert not named and "no checkpoint was saved" in line
    else:
        assert named == [str(root / "d" / "checkpoint.h5")]
    assert json.loads((root / "d" / "status.json").read_text())["state"] == "diverged"


# ---- bounded metrics files ---------------------------------------------------------------------------
def _attempt(folder: Path, n: int, start: int, steps: int, killed: bool) -> None:
    """Attempt ``n`` resumed at step ``start``: ``steps`` updates, an epoch row every 7, an event.
    A killed attempt's file is not closed and holds rows past its commit counter."""
    with MetricsWriter(folder / f"metrics-{n}.h5", {"run": "x", "start_step": start, "attempt": n},
                       flush_every_s=0, flush_rows=5) as w:  # fmt: skip
        for s in range(start + 1, start + steps + 1):
            w.log_update(s, s // 7, s * 0.5, -50.0 + 0.01 * s)
            if s % 7 == 0:
                w.log_epoch({"epoch": s // 7, "step": s, "time": s * 0.5, "valid_log_ptilde": -40.0 + s / 100,
                             "valid_log_ptilde_se": 0.1, "log_z2": float("nan")})  # fmt: skip
        w.log_event(start + steps, 1.0, "stopped", f"attempt {n} ✓")
    if killed:
        with h5py.File(folder / f"metrics-{n}.h5", "r+") as f:
            committed = f["committed"][()]
            f["committed"][3] = 0
            u = f["updates"]
            u.resize((committed[0] + 3,))  # half-written rows a reader must never see


def _same(a, b, b_folder: Path | None = None, a_folder: Path | None = None) -> None:
    warnings_b = [w.replace(str(b_folder), str(a_folder)) for w in b.warnings] if b_folder else b.warnings
    assert a.attempts == b.attempts and a.run_info == b.run_info and a.warnings == warnings_b and a.closed == b.closed
    for name in ("updates", "epochs", "events"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name


def test_compacting_old_attempts_keeps_read_run_metrics_identical(tmp_path):
    from bihm_app.store.metrics import ARCHIVE_NAME, compact_metrics

    run, ref = tmp_path / "run", tmp_path / "ref"
    run.mkdir()
    rng = np.random.default_rng(3)
    start = 0
    for n in range(1, 21):
        if n == 6:
            (run / "metrics-6.h5").write_bytes(b"garbage, not HDF5")  # an unreadable attempt
            continue
        steps = int(rng.integers(5, 40))
        _attempt(run, n, start, steps, killed=bool(n % 3))
        start = max(0, start + steps - int(rng.integers(0, 10)))  # the next one resumed a little earlier
    shutil.copytree(run, ref)
    before = read_run_metrics(run)
    assert len(before.attempts) == 19 and len(before.warnings) == 1
    assert compact_metrics(run) == run / ARCHIVE_NAME
    _same(read_run_metrics(run), before)
    assert metrics_files(run) == [] and (run / "metrics-6.h5.unreadable").exists()
    # more attempts, compacted again: still what reading every original file gives
    for n in range(21, 30):
        for folder in (run, ref):
            _attempt(folder, n, start, 10, killed=n % 2 == 0)
        start += 8
    _same(read_run_metrics(run), read_run_metrics(ref), ref, run)
    compact_metrics(run)
    _same(read_run_metrics(run), read_run_metrics(ref), ref, run)
    assert sorted(p.name for p in run.iterdir()) == sorted([ARCHIVE_NAME, "metrics-6.h5.unreadable"])
    # the dashboard's live series sees the same rows
    from bihm_app.tui.widgets.run_metrics import RunSeries

    s = RunSeries(run)
    s.poll()
    full = read_run_metrics(ref)
    assert np.array_equal(s.updates["step"], full.updates["step"]) and np.array_equal(s.epochs["step"], full.epochs["step"])


def test_an_unreadable_archive_is_kept_aside_never_overwritten_and_the_report_says_so(tmp_path):
    """A damaged metrics-archive.h5 (here: its second half cut off) was ignored without a word and
    then overwritten by the next compaction, losing the old attempts' rows for good (hostile review).
    Now the next compaction renames it metrics-archive.h5.unreadable (its bytes unchanged), the new
    archive carries a warning naming it, and `bihm report` lists what the curves leave out. Catches
    the overwrite and the silent report."""
    from bihm_app.runner.report import training_figures
    from bihm_app.store.metrics import ARCHIVE_NAME, compact_metrics

    run = tmp_path / "run"
    run.mkdir()
    start = 0
    for n in range(1, 9):
        _attempt(run, n, start, 10, killed=False)
        start += 10
    assert compact_metrics(run) == run / ARCHIVE_NAME
    archive = (run / ARCHIVE_NAME).read_bytes()
    (run / ARCHIVE_NAME).write_bytes(archive[: len(archive) // 2])
    damaged = (run / ARCHIVE_NAME).read_bytes()
    assert read_run_metrics(run).warnings  # unreadable, and said so by the reader
    for n in range(9, 17):
        _attempt(run, n, start, 10, killed=False)
        start += 10
    assert compact_metrics(run) == run / ARCHIVE_NAME
    assert (run / (ARCHIVE_NAME + ".unreadable")).read_bytes() == damaged
    after = read_run_metrics(run)
    assert after.attempts == list(range(9, 17)) and len(after.updates) == 80
    assert any("unreadable" in w and ARCHIVE_NAME + ".unreadable" in w for w in after.warnings), after.warnings
    notes: list[str] = []
    training_figures(run, tmp_path / "fig", "run", notes)
    assert any(ARCHIVE_NAME in n for n in notes), notes


def test_a_resumed_run_keeps_a_bounded_number_of_metrics_files(trained):
    from bihm_app.store.metrics import ARCHIVE_NAME, MAX_ATTEMPT_FILES

    root, run = trained
    epochs_before = read_run_metrics(run).epochs["epoch"].tolist()
    for n in range(2, MAX_ATTEMPT_FILES + 1):  # attempts killed before writing a row
        MetricsWriter(run / f"metrics-{n}.h5", {"run": "t", "start_step": 28}).close()
    res = bihm_here("train", "--resume", "t", "--epochs", "3", "--runs-dir", root, "--quiet")
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in run.iterdir() if p.name.startswith("metrics"))
    assert names == sorted([ARCHIVE_NAME, f"metrics-{MAX_ATTEMPT_FILES + 1}.h5"])
    m = read_run_metrics(run)
    assert m.epochs["epoch"].tolist() == epochs_before + [3] and m.attempts[-1] == MAX_ATTEMPT_FILES + 1
