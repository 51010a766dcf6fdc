"""Run progress from the metrics rows (runner/progress.py): the one computation behind the runs list
and the run view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bihm_app.engine.training import TrainConfig
from bihm_app.runner.progress import duration, run_progress
from bihm_app.runner.reporters import Reporter
from bihm_app.runner.train_loop import RunSpec, start_run
from bihm_app.store.metrics import EPOCH_DTYPE, UPDATE_DTYPE, decode_events, read_run_metrics


def tables(per_epoch: int, epochs_done: int, in_epoch: int, upd_s: float, valid_s: float):
    """Rows of a run that trains ``upd_s`` updates per second and validates for ``valid_s`` s."""
    updates, epochs = [], []
    step, t = 0, 0.0
    for e in range(epochs_done + 1):
        n = per_epoch if e < epochs_done else in_epoch
        for _ in range(n):
            step += 1
            t += 1.0 / upd_s
            updates.append((step, e, t, -100.0))
        if e < epochs_done:
            t += valid_s
            row = np.zeros(1, EPOCH_DTYPE)
            row["epoch"], row["step"], row["time"] = e + 1, step, t
            epochs.append(row)
    u = np.array(updates, dtype=UPDATE_DTYPE)
    ep = np.concatenate(epochs) if epochs else np.zeros(0, EPOCH_DTYPE)
    return u, ep


INFO = {"config": {"train": {"epochs": 10}}, "batches_per_epoch": 50}


def test_speed_eta_and_phase_from_the_rows():
    """Catches a speed measured by wall clock between polls (0 while validating), an ETA that
    ignores validation time or the part of the epoch already done, and a phase that is not the
    trainer's latest."""
    u, ep = tables(per_epoch=50, epochs_done=3, in_epoch=20, upd_s=25.0, valid_s=3.0)
    events = [{"kind": "phase", "message": "training"}, {"kind": "phase", "message": "validating"},
              {"kind": "rollback", "message": "x"}]  # fmt: skip
    p = run_progress(u, ep, events, INFO, "running")
    assert (p.epoch, p.total_epochs, p.step, p.batch, p.batches_per_epoch) == (3, 10, 170, 20, 50)
    assert p.updates_per_s == pytest.approx(25.0)
    per_epoch_s = 50 / 25.0 + 3.0
    assert p.eta_s == pytest.approx((10 - 3 - 20 / 50) * per_epoch_s)
    assert p.phase == "validating" and p.short() == "validating" and "validating …" in p.text()
    assert p.epoch_text() == "3/10"


def test_before_the_first_epoch_the_eta_uses_the_training_speed():
    u, ep = tables(per_epoch=50, epochs_done=0, in_epoch=10, upd_s=5.0, valid_s=0.0)
    p = run_progress(u, ep, [], INFO, "running")
    assert p.phase == "training" and p.updates_per_s == pytest.approx(5.0)
    assert p.eta_s == pytest.approx((10 - 10 / 50) * 50 / 5.0)
    assert p.text() == "epoch 1/10 · batch 10/50 · 5 upd/s · ETA 1m 38s"  # the 1st epoch is in progress


def test_a_run_that_is_not_running_has_no_speed_eta_or_phase():
    u, ep = tables(per_epoch=50, epochs_done=10, in_epoch=0, upd_s=25.0, valid_s=1.0)
    p = run_progress(u, ep, [{"kind": "phase", "message": "validating"}], INFO, "finished")
    assert (p.epoch, p.step, p.updates_per_s, p.eta_s, p.phase) == (10, 500, None, None, None)
    assert p.short() == "" and p.text() == "10/10 epochs done · step 500"
    empty = run_progress(np.zeros(0, UPDATE_DTYPE), np.zeros(0, EPOCH_DTYPE), [], {}, "running")
    assert (empty.epoch, empty.step, empty.total_epochs, empty.eta_s) == (0, 0, None, None)


def test_durations():
    assert [duration(s) for s in (4.6, 250, 7500, 200000)] == ["5s", "4m 10s", "2h 05m", "2d 7h"]


def test_the_trainer_announces_its_phases_in_the_metrics_file(tmp_path):
    """Catches phases that only the CLI's progress bar sees: while the trainer validates or
    estimates 2 log Z, a reader of the metrics file must see that phase (the dashboard showed
    `0 upd/s` instead), and the run info must carry the batches per epoch."""
    torch.set_num_threads(1)
    seen = []

    class Watch(Reporter):
        def phase(self, text):  # the file reporters have written the event by now (they come first)
            if text != "training":
                rm = read_run_metrics(run_dir[0])
                info = list(rm.run_info.values())[-1]
                seen.append(run_progress(rm.updates, rm.epochs, decode_events(rm.events), info, "running"))

    run_dir = [tmp_path / "r"]
    cfg = TrainConfig(epochs=2, batch_size=500, valid_max=100, z_samples=200, patience=0)
    start_run(tmp_path, RunSpec(data="dna", layers=(8, 4), train=cfg, name="r"), Watch())
    per_epoch = -(-1400 // 500)
    assert [p.phase for p in seen] == ["validating", "estimating 2 log Z"] * 2
    first = seen[0]
    assert (first.epoch, first.total_epochs, first.batch, first.batches_per_epoch) == (0, 2, per_epoch, per_epoch)
    assert first.updates_per_s is not None and first.updates_per_s > 0
    assert seen[2].epoch == 1 and seen[2].eta_s is not None
