"""The run view's live tail of a run's metrics files (tui/widgets/run_metrics.py RunSeries)."""

from __future__ import annotations

import os

import h5py
import numpy as np

from bihm_app.store.metrics import LIBVER, MetricsWriter
from bihm_app.tui.widgets.run_metrics import RunSeries


def _write(path, steps: int) -> None:
    with MetricsWriter(path, {"run": "r", "config": {}, "start_step": 0}) as w:
        for s in range(1, steps + 1):
            w.log_update(s, 0, float(s), -150.0)


def test_a_metrics_file_caught_while_its_trainer_creates_it_is_read_once_it_is_ready(tmp_path, monkeypatch):
    """A trainer creates metrics-1.h5 in place, adds its datasets and only then opens it for
    concurrent readers; the run view polling in between could not open it, marked it bad and never
    looked at it again — it stopped following that live run (a dashboard test failed so on a loaded
    machine: the run trained to the end while its view stayed empty). Catches that: the file is
    tried again once it changed, its rows arrive and the warning goes; a file that stays broken
    is not reopened on every poll."""
    path = tmp_path / "metrics-1.h5"
    half = h5py.File(path, "w-", libver=LIBVER)  # the writer mid-creation: no datasets, no SWMR yet
    series = RunSeries(tmp_path)
    try:
        series.poll()
        assert series.step == 0 and len(series.warnings) == 1
        half.close()
        os.remove(path)
        _write(path, 5)  # the trainer's file, ready (a new inode and size)
        series.poll()
        assert series.step == 5 and series.warnings == []
        assert np.array_equal(series.updates["step"], np.arange(1, 6))
    finally:
        series.close()
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "metrics-1.h5").write_bytes(b"not hdf5 at all")
    series = RunSeries(broken)
    opened = []
    import bihm_app.tui.widgets.run_metrics as rm

    real = rm.MetricsReader
    monkeypatch.setattr(rm, "MetricsReader", lambda p: opened.append(p) or real(p))
    try:
        for _ in range(3):
            series.poll()
    finally:
        series.close()
    assert len(opened) == 1 and len(series.warnings) == 1
