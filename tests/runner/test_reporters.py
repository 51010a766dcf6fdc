"""The training loop reports through events; which reporters listen is chosen once (rank 0: files)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from bihm_app.engine.training import TrainConfig
from bihm_app.runner.reporters import MetricsFileReporter, Reporter, StatusFileReporter, reporters_for
from bihm_app.runner.train_loop import RunSpec, start_run
from bihm_app.store.metrics import read_run_metrics


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, *a) -> None:
        self.events.append("start")

    def update(self, *a) -> None:
        self.events.append("update")

    def epoch(self, row, improved) -> None:
        self.events.append(f"epoch {row['epoch']}")

    def finish(self, reason) -> None:
        self.events.append("finish")


def test_rank_zero_writes_the_files_other_ranks_only_the_front_end():
    """Catches a rank > 0 writing status.json or a metrics file (two writers corrupt them)."""
    ui = Recorder()
    kinds = lambda rank: [type(r) for r in reporters_for(SimpleNamespace(rank=rank), ui).reporters]  # noqa: E731
    assert kinds(0) == [MetricsFileReporter, StatusFileReporter, Recorder]
    assert kinds(1) == [Recorder]


def test_a_run_emits_its_events_and_the_file_reporters_record_them(tmp_path):
    """Catches an event the loop no longer emits (an epoch the dashboard never sees, a status left
    at 'running') and a front-end reporter that receives updates out of order."""
    torch.set_num_threads(1)
    ui = Recorder()
    cfg = TrainConfig(epochs=2, batch_size=500, valid_max=100, z_samples=0, patience=0)
    run, reason = start_run(tmp_path, RunSpec(data="dna", layers=(8, 4), train=cfg, name="r"), ui)
    per_epoch = -(-1400 // 500)  # dna has 1400 training points
    assert ui.events == ["start", *["update"] * per_epoch, "epoch 1", *["update"] * per_epoch, "epoch 2", "finish"]
    status = json.loads((run.path / "status.json").read_text())
    assert status["state"] == "finished" and status["epoch"] == 2 and "epoch limit" in reason
    rm = read_run_metrics(run.path)
    assert list(rm.epochs["epoch"]) == [1, 2] and len(rm.updates) == 2 * per_epoch
