"""A training stopped while it is still starting (status "created": the run folder exists, the model
is being built) — what the dashboard's Stop now does to a run launched with wrong settings."""

from __future__ import annotations

import pytest
import torch

from bihm_app.engine.training import TrainConfig
from bihm_app.runner import train_loop
from bihm_app.runner.train_loop import RunSpec, start_run
from bihm_app.store.runs import RunFolder


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(143)], ids=["SIGINT", "SIGTERM"])
def test_a_run_stopped_before_training_starts_reads_stopped_not_crashed(tmp_path, monkeypatch, stop):
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (`bihm`'s handler: SystemExit 143) while the model is
    built left status.json at "created"; with its lock released the run then read as "crashed:
    process N ended before its first checkpoint", as if it had died. Catches that: it reads
    "stopped", saying it stopped before its first checkpoint, and the signal still ends the call."""
    torch.set_num_threads(1)

    def building(self, *args, **kwargs):
        raise stop

    monkeypatch.setattr(train_loop.TrainingRun, "__init__", building)
    cfg = TrainConfig(epochs=1, batch_size=500, valid_max=100, z_samples=0)
    with pytest.raises(type(stop)):
        start_run(tmp_path, RunSpec(data="dna", layers=(8, 4), train=cfg, name="r"))
    status = RunFolder(tmp_path / "r").read_status()
    assert status["state"] == "stopped", status
    assert "before its first checkpoint" in status["message"], status
