"""Where a training run stands, from the rows of its metrics files — the one computation behind the
dashboard's runs list and its run view (both read the same files, so they never disagree).

Inputs are the metrics tables (``store.metrics``: updates with ``step, epoch, time``, epochs with
``epoch, step, time``), the decoded events (the trainer's ``phase`` events say when it validates
or estimates 2 log Z), the run info of the latest attempt (total epochs, batches per epoch) and
the state from ``status.json``. Speed comes from the rows' own clock (training time), so it does
not drop to 0 while no update arrives during validation.

Epochs are counted one way everywhere (CLI log, repro table, dashboard), with the words of
:func:`position_text`: "epoch N" is the N-th epoch (1-based: the one in progress, or the one a line
reports on), "N/T epochs done" counts the finished ones. A run stopped at batch 328 of its 2nd
epoch is "epoch 2, batch 328/500" and "1/1000 epochs done" — never "epoch 1".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RunProgress", "run_progress", "duration", "rate_text", "position_text", "epochs_done_text"]

#: Update rows used for the speed (the most recent ones of the epoch in progress).
RATE_WINDOW = 200
#: Epoch rows used for the time per epoch of the ETA.
EPOCH_WINDOW = 5


def _of(n: int, total: int | None) -> str:
    return f"{n}/{total}" if total else str(n)


def epochs_done_text(done: int, total: int | None = None) -> str:
    """'4/1000 epochs done' ('1 epoch done' without a total)."""
    return f"{_of(done, total)} epoch{'' if done == 1 and not total else 's'} done"


def position_text(done: int, batch: int, total: int | None = None, per_epoch: int | None = None) -> str:
    """Where a run stands, from the epochs done and the batches of the next one: 'epoch 5/1000,
    batch 328/500' in the middle of an epoch (the 5th: 1-based, as the progress bar counts), else
    '4/1000 epochs done'. The one wording of the CLI log, the repro table and the dashboard."""
    if batch > 0 and not (total and done >= total):
        return f"epoch {_of(done + 1, total)}, batch {_of(batch, per_epoch)}"
    return epochs_done_text(done, total)


@dataclass(frozen=True)
class RunProgress:
    """Progress of one run: epochs done (of the total), updates, speed, time left and phase."""

    epoch: int = 0  # epochs done (the epoch in progress is epoch + 1)
    total_epochs: int | None = None
    step: int = 0
    batch: int | None = None  # updates done in the epoch in progress
    batches_per_epoch: int | None = None
    updates_per_s: float | None = None
    eta_s: float | None = None  # until the epoch limit (early stopping may end sooner)
    phase: str | None = None  # while running: "training", "validating", "estimating 2 log Z"

    @property
    def current_epoch(self) -> int | None:
        """The epoch in progress, 1-based (None when the run is between epochs and not running,
        or has done all its epochs)."""
        if self.total_epochs and self.epoch >= self.total_epochs:
            return None
        return self.epoch + 1 if (self.batch or self.phase is not None) else None

    def epoch_text(self) -> str:
        """Epochs done: '3/100' (or '3' when the total is unknown)."""
        return _of(self.epoch, self.total_epochs)

    def short(self) -> str:
        """What fits a table cell: the phase when it is not training, else speed and ETA."""
        if self.phase and self.phase != "training":
            return self.phase
        parts = []
        if self.updates_per_s:
            parts.append(f"{rate_text(self.updates_per_s)}/s")
        if self.eta_s is not None:
            parts.append(duration(self.eta_s))
        return " ".join(parts)

    def text(self) -> str:
        """The whole line. Running: 'epoch 4/100 · batch 120/500 · 130 upd/s · ETA 4m 10s' (the
        epoch in progress, 1-based, as in the CLI's progress bar and log), 'epoch 4/100 · step 1620 ·
        validating …'; else '3/100 epochs done · epoch 4 stopped at batch 120/500 · step 1620'."""
        current = self.current_epoch
        if self.phase is None or current is None:  # not running, or all epochs done
            parts = [epochs_done_text(self.epoch, self.total_epochs)]
            if current is not None and self.batch:
                parts.append(f"epoch {current} stopped at batch {_of(self.batch, self.batches_per_epoch)}")
            parts.append(f"step {self.step}")
        else:
            parts = [f"epoch {_of(current, self.total_epochs)}"]
            if self.batches_per_epoch and self.phase == "training":
                parts.append(f"batch {_of(self.batch or 0, self.batches_per_epoch)}")
            else:
                parts.append(f"step {self.step}")
        if self.updates_per_s:
            parts.append(f"{rate_text(self.updates_per_s)} upd/s")
        if self.eta_s is not None:
            parts.append(f"ETA {duration(self.eta_s)}")
        if self.phase and self.phase != "training":
            parts.append(f"{self.phase} …")
        return " · ".join(parts)


def rate_text(per_s: float) -> str:
    """'1070', '42', '8', '2.5', '0.123': whole numbers from 10 up, three digits below."""
    return f"{per_s:.0f}" if per_s >= 10 else f"{per_s:.3g}"


def duration(seconds: float) -> str:
    """'45s', '4m 10s', '2h 05m', '3d 4h'."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _int(v) -> int | None:
    return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 else None


def _rate(updates: np.ndarray, epoch: int) -> float | None:
    """Updates per second of training time, from the latest rows of one epoch (an epoch's rows
    never span a validation, so the pause does not dilute the speed)."""
    for e in (epoch, epoch - 1):
        rows = updates[updates["epoch"] == e][-RATE_WINDOW:]
        if len(rows) >= 2:
            dt = float(rows["time"][-1] - rows["time"][0])
            if dt > 0 and math.isfinite(dt):
                return float(rows["step"][-1] - rows["step"][0]) / dt
    return None


def _seconds_per_epoch(epochs: np.ndarray) -> float | None:
    """Wall time per epoch, validation included, from the epoch rows' clock."""
    rows = epochs[np.isfinite(epochs["time"].astype(float))][-EPOCH_WINDOW:]
    if len(rows) >= 2 and rows["epoch"][-1] > rows["epoch"][0]:
        return float(rows["time"][-1] - rows["time"][0]) / float(rows["epoch"][-1] - rows["epoch"][0])
    if len(rows) == 1 and rows["epoch"][0] > 0 and rows["time"][0] > 0:
        return float(rows["time"][0]) / float(rows["epoch"][0])
    return None


def run_progress(updates: np.ndarray, epochs: np.ndarray, events: list[dict], run_info: dict | None,
                 state: str) -> RunProgress:  # fmt: skip
    """The progress of a run from its metrics rows (see the module docstring). ``run_info`` is the
    latest attempt's (``config.train.epochs``, ``batches_per_epoch``); ``state`` from status.json:
    speed, ETA and phase are given only while it is ``running``."""
    info = run_info if isinstance(run_info, dict) else {}
    train = (info.get("config") or {}).get("train") if isinstance(info.get("config"), dict) else None
    total = _int(train.get("epochs")) if isinstance(train, dict) else None
    per_epoch = _int(info.get("batches_per_epoch"))
    step = int(updates["step"][-1]) if len(updates) else 0
    epoch = int(updates["epoch"][-1]) if len(updates) else 0
    if len(epochs):
        step = max(step, int(epochs["step"][-1]))
        epoch = max(epoch, int(epochs["epoch"][-1]))
    batch = int(np.count_nonzero(updates["epoch"] == epoch)) if len(updates) else 0
    if per_epoch:
        batch = min(batch, per_epoch)
    if state != "running":
        return RunProgress(epoch, total, step, batch, per_epoch)
    phases = [e.get("message") for e in events if e.get("kind") == "phase"]
    phase = str(phases[-1]) if phases else "training"
    rate = _rate(updates, epoch)
    eta = None
    if total:
        per = _seconds_per_epoch(epochs)
        if per is None and rate and per_epoch:
            per = per_epoch / rate  # before the first validation: training time only
        if per is not None:
            done = epoch + (batch / per_epoch if per_epoch else 0.0)
            eta = max(0.0, (total - done) * per)
    return RunProgress(epoch, total, step, batch, per_epoch, rate, eta, phase)
