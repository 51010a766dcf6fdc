"""Epochs are counted one way everywhere (runner/progress.py): "epoch N" is the N-th epoch (the one
in progress), "N/T epochs done" the finished ones — in the CLI's save message, the repro table and
the dashboard's progress text alike."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from bihm_app.engine.training import TrainConfig
from bihm_app.runner import repro
from bihm_app.runner.progress import run_progress
from bihm_app.runner.reporters import Reporter
from bihm_app.runner.train_loop import RunSpec, resume_run, start_run
from bihm_app.store.checkpoint import read_meta
from bihm_app.store.metrics import decode_events, read_run_metrics

PER_EPOCH = 14  # dna: 1400 training points, batch 100
TOTAL = 6


class StopAt(Reporter):
    """Sends itself SIGTERM at update ``batch`` of the epoch with ``epochs_done`` finished (as a user
    would press Ctrl-C) and records the messages."""

    def __init__(self, run_dir, epochs_done: int, batch: int) -> None:
        self.run_dir, self.at = run_dir, (epochs_done, batch)
        self.done = 0
        self.messages: list[str] = []

    def start(self, run, total_epochs, start_epoch, batches_per_epoch, resumed) -> None:
        self.done = start_epoch

    def epoch(self, row, improved) -> None:
        self.done = row["epoch"]

    def update(self, step, batch_in_epoch, objective) -> None:
        if (self.done, batch_in_epoch) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)

    def message(self, text) -> None:
        self.messages.append(text)


def _dashboard(run_dir, state: str) -> str:
    rm = read_run_metrics(run_dir)
    info = list(rm.run_info.values())[-1]
    return run_progress(rm.updates, rm.epochs, decode_events(rm.events), info, state).text()


def _repro_cell(run_dir) -> tuple[list[str], list[str]]:
    st = repro.RunState("r", 1e-2, 0, max_epochs=TOTAL, state="resumable")
    repro._fill_progress(st, read_meta(run_dir / "checkpoint.h5"))
    table = repro.training_table(repro.ReproResult("uci", [repro.GroupResult("dna", [st])], repro.EvalSettings(), None))
    return table.columns, table.rows[0]


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM to oneself")
def test_save_message_repro_table_and_dashboard_count_epochs_the_same_way(tmp_path):
    """Catches the bugs of the review: the log said "saved epoch 2, batch 5/14" and the repro table
    "epochs 1/6" (a count of finished epochs with the same word); after a save at "epoch 4, batch
    186" the dashboard showed "epoch 4/1000 · batch 311/500" one epoch later (epochs done next to
    the batch of the epoch in progress). Here every text must name the epoch in progress the same
    way and label the count of finished ones."""
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=TOTAL, batch_size=100, valid_max=100, z_samples=0, patience=0)
    run_dir = tmp_path / "r"
    first = StopAt(run_dir, epochs_done=1, batch=5)
    start_run(tmp_path, RunSpec(data="dna", layers=(8, 4), train=cfg, name="r"), first)
    assert any(m.endswith(f"saved at epoch 2/{TOTAL}, batch 5/{PER_EPOCH} (1/{TOTAL} epochs done)") for m in first.messages), first.messages
    # the dashboard's line while it runs (the metrics rows up to the stop; phase "training")
    assert _dashboard(run_dir, "running").startswith(f"epoch 2/{TOTAL} · batch 5/{PER_EPOCH} ·")
    assert _dashboard(run_dir, "stopped").startswith(f"1/{TOTAL} epochs done · epoch 2 stopped at batch 5/{PER_EPOCH}")
    header, row = _repro_cell(run_dir)
    assert row[header.index("epochs done")] == f"1/{TOTAL} +5 batches"

    # resumed, and stopped one epoch later: the dashboard names the epoch the CLI names
    second = StopAt(run_dir, epochs_done=2, batch=7)
    resume_run(tmp_path, "r", second)
    assert any(m.endswith(f"saved at epoch 3/{TOTAL}, batch 7/{PER_EPOCH} (2/{TOTAL} epochs done)") for m in second.messages), second.messages
    assert _dashboard(run_dir, "running").startswith(f"epoch 3/{TOTAL} · batch 7/{PER_EPOCH} ·")
    assert _dashboard(run_dir, "stopped").startswith(f"2/{TOTAL} epochs done · epoch 3 stopped at batch 7/{PER_EPOCH}")
    header, row = _repro_cell(run_dir)
    assert row[header.index("epochs done")] == f"2/{TOTAL} +7 batches"
