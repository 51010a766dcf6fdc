"""Live metrics files: schema, buffering, SWMR readers (live, after close, after SIGKILL)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from bihm_app.errors import CheckpointError
from bihm_app.store.metrics import (
    EPOCH_FIELDS,
    MetricsReader,
    MetricsWriter,
    decode_events,
    read_run_metrics,
)

ROOT = Path(__file__).resolve().parents[2]


def _writer_process(path: Path, n: int, every: int, hang: bool) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.store._metrics_writer", str(path), str(n), str(every), "1" if hang else "0"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_write_then_read_back(tmp_path):
    path = tmp_path / "metrics-1.h5"
    with MetricsWriter(path, {"name": "r", "layers": [3, 2]}, flush_every_s=60, flush_rows=10_000) as w:
        for s in range(1, 26):
            w.log_update(s, 1, s * 0.1, -50.0 + s)
        assert w.counts == {"updates": 25, "epochs": 0, "events": 0}
        w.log_epoch({"epoch": 1, "step": 25, "time": 2.5, "valid_log_ptilde": -40.0, "valid_log_ptilde_se": 0.3})
        w.log_event(25, 2.5, "rollback", "NaN at step 25 — rolled back to epoch 0 ✓")
    with MetricsReader(path) as r:
        assert r.run_info == {"name": "r", "layers": [3, 2]}
        d = r.poll()
        assert d.closed
        assert d.updates["step"].tolist() == list(range(1, 26))
        assert np.allclose(d.updates["objective"], -50.0 + np.arange(1, 26))
        assert d.epochs.dtype.names == EPOCH_FIELDS
        row = d.epochs[0]
        assert (row["epoch"], row["step"], row["valid_log_ptilde"]) == (1, 25, -40.0)
        assert math.isnan(row["valid_log_p"]) and math.isnan(row["lr"])  # missing -> NaN
        ev = decode_events(d.events)
        assert ev == [{"step": 25, "time": 2.5, "kind": "rollback", "message": "NaN at step 25 — rolled back to epoch 0 ✓"}]
        assert not r.poll()  # nothing new
        again = r.read_all()
        assert len(again.updates) == 25 and not r.poll()


def test_writer_refuses_unknown_columns_and_existing_files(tmp_path):
    path = tmp_path / "metrics-1.h5"
    with MetricsWriter(path, {}) as w:
        with pytest.raises(ValueError, match="valid_logp"):
            w.log_epoch({"epoch": 1, "valid_logp": 1.0})
    with pytest.raises(CheckpointError, match="cannot create"):
        MetricsWriter(path, {})
    w.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        w.log_update(1, 1, 0.0, 0.0)


def test_long_event_messages_are_clipped_on_a_character_boundary(tmp_path):
    path = tmp_path / "metrics-1.h5"
    with MetricsWriter(path, {}) as w:
        w.log_event(1, 0.0, "stopped", "é" * 1000)
    with MetricsReader(path) as r:
        msg = decode_events(r.poll().events)[0]["message"]
    assert set(msg) == {"é"} and 150 < len(msg) <= 200


def test_reader_follows_a_live_writer_and_sees_every_row_once(tmp_path):
    path = tmp_path / "metrics-1.h5"
    n, every = 1500, 100
    proc = _writer_process(path, n, every, hang=False)
    try:
        reader = MetricsReader(path)
        steps, epochs, events, sizes = [], [], [], []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            d = reader.poll()
            steps += d.updates["step"].tolist()
            epochs += d.epochs["epoch"].tolist()
            events += [e["kind"] for e in decode_events(d.events)]
            sizes.append(len(steps))
            if d.closed:
                break
            time.sleep(0.05)
        d = reader.poll()  # nothing may arrive twice after the end
        reader.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not d
    assert steps == list(range(1, n + 1))
    assert epochs == list(range(1, n // every + 1))
    assert events == ["lr-halved"] * (n // every // 3)
    growing = [b for a, b in zip(sizes, sizes[1:]) if b > a]
    assert len(growing) >= 3, sizes  # rows arrived over several polls while the writer ran
    assert sizes[0] < n  # the first poll came before the writer had finished


def test_reader_after_the_writer_was_sigkilled(tmp_path):
    path = tmp_path / "metrics-1.h5"
    proc = _writer_process(path, 400, 50, hang=True)
    try:
        assert proc.stdout.readline().strip() == "done"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with MetricsReader(path) as r:
        d = r.poll()
    assert not d.closed
    assert d.updates["step"].tolist() == list(range(1, 401))
    assert d.epochs["epoch"].tolist() == list(range(1, 9))


def test_a_writer_killed_mid_run_leaves_only_whole_rows(tmp_path):
    path = tmp_path / "metrics-1.h5"
    proc = _writer_process(path, 100_000, 100, hang=False)
    time.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with MetricsReader(path) as r:
        d = r.poll()
    n = len(d.updates)
    assert n > 0 and d.updates["step"].tolist() == list(range(1, n + 1))
    assert d.epochs["epoch"].tolist() == list(range(1, len(d.epochs) + 1))


def test_reader_errors_are_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        MetricsReader(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all" * 100)
    with pytest.raises(CheckpointError, match="unreadable"):
        MetricsReader(bad)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w", libver=("v110", "v110")) as f:
        f.attrs["schema"] = "something"
    with pytest.raises(CheckpointError, match="not a bihm metrics file"):
        MetricsReader(other)


def _attempt(path: Path, steps: range, every: int, start_step: int | None = None, close: bool = True) -> None:
    info = {} if start_step is None else {"start_step": start_step}
    w = MetricsWriter(path, info)
    for s in steps:
        w.log_update(s, (s - 1) // every + 1, float(s), float(s))
        if s % every == 0:
            w.log_epoch({"epoch": s // every, "step": s, "valid_log_ptilde": float(s)})
    if close:
        w.close()
    else:
        w.flush()
        w._f.close()  # like a crash after the last flush: never marked closed


def test_read_run_metrics_concatenates_attempts_and_skips_a_corrupt_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # attempt 1 ran to step 35 (epochs 1-3), crashed; the checkpoint was at step 20 (epoch 2)
    _attempt(run / "metrics-1.h5", range(1, 36), 10, close=False)
    # attempt 2 resumed from step 20
    _attempt(run / "metrics-2.h5", range(21, 51), 10, start_step=20)
    (run / "metrics-3.h5").write_bytes(b"\0" * 100)  # unreadable attempt
    # attempt 4 resumed from step 50, without start_step (inferred from its first row)
    _attempt(run / "metrics-4.h5", range(51, 61), 10)
    (run / "metrics-x.h5").write_bytes(b"ignored")
    m = read_run_metrics(run)
    assert m.attempts == [1, 2, 4]
    assert len(m.warnings) == 1 and "metrics-3.h5" in m.warnings[0]
    assert m.updates["step"].tolist() == list(range(1, 61))
    assert m.epochs["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert m.epochs["attempt"].tolist() == [1, 1, 2, 2, 2, 4]
    assert m.closed
    xs, ys = m.epoch_series("valid_log_ptilde")
    assert xs.tolist() == [1, 2, 3, 4, 5, 6] and ys.tolist() == [10, 20, 30, 40, 50, 60]


def test_read_run_metrics_of_an_empty_or_missing_run(tmp_path):
    m = read_run_metrics(tmp_path / "nope")
    assert m.attempts == [] and len(m.updates) == 0 and len(m.epochs) == 0 and m.warnings == []
    assert "attempt" in m.epochs.dtype.names and "valid_log_ptilde" in m.epochs.dtype.names
