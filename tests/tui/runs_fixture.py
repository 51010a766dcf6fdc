"""Small, deterministic run folders for the dashboard tests (written with the store's own writers)."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import numpy as np

from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.metrics import MetricsWriter
from bihm_app.store.runs import RunFolder

FIXED_UPDATED = "2020-01-01T12:00:00+00:00"  # old enough that the age column shows a stable date


def _params(layers: tuple[int, ...], seed: int, n_visible: int = 784,
            visible_mean: float | None = None) -> dict[str, np.ndarray]:
    """Random initial parameters; ``visible_mean``: p(x | h_1) = that mean for every x_i (a model
    of a sparse data set, whose Bernoulli means are all below 0.5)."""
    import torch

    from bihm_app.engine.model import BiHM, ModelConfig, make_generator

    model = BiHM(ModelConfig(n_visible, tuple(layers)), generator=make_generator(seed, "cpu"))
    params = {f"params/{k}": v.detach().numpy().copy() for k, v in model.named_parameters()}
    if visible_mean is not None:
        params["params/p_weights.0"][:] = 0.0
        params["params/p_biases.0"][:] = math.log(visible_mean / (1 - visible_mean))
    return params


def epoch_row(epoch: int, step: int, offset: float = 0.0) -> dict:
    v = -200.0 + 60.0 * (1 - math.exp(-epoch / 3)) + offset
    return {
        "epoch": epoch, "step": step, "time": float(epoch), "train_objective": v - 5,
        "valid_log_ptilde": v, "valid_log_ptilde_se": 0.8, "valid_log_p": v + 3, "valid_log_p_se": 0.6,
        "log_z2": -6.0 + 0.1 * epoch, "log_z2_se": 0.3, "valid_log_pstar": v - 1, "ess": 0.259, "lr": 1e-3,
    }  # fmt: skip


def write_metrics(path: Path, config: dict, epochs: int, per_epoch: int, offset: float = 0.0,
                  start_step: int = 0, close: bool = True) -> MetricsWriter:
    w = MetricsWriter(path, {"run": path.parent.name, "config": config, "start_step": start_step, "start_epoch": 0})
    step = start_step
    for e in range(epochs):
        for _ in range(per_epoch):
            step += 1
            w.log_update(step, e, float(step), -210.0 + 50.0 * (1 - math.exp(-step / 40.0)) + offset + 3 * math.sin(step))
        w.log_epoch(epoch_row(e + 1, step, offset))
    if close:
        w.close()
    else:
        w.flush()
    return w


def make_run(root: Path, name: str, layers=(8, 4), epochs: int = 4, per_epoch: int = 25, state: str = "finished",
             K: int = 10, lr: float = 1e-3, seed: int = 0, offset: float = 0.0, pid: int | None = None,
             data: str = "bmnist", n_visible: int = 784, visible_mean: float | None = None,
             max_epochs: int = 100) -> RunFolder:
    """A finished-looking run: checkpoint.h5, best.h5, metrics-1.h5 and status.json."""
    run = RunFolder(Path(root) / name)
    run.path.mkdir(parents=True)
    config = {
        "model": {"n_visible": n_visible, "layers": list(layers)},
        "train": {"method": "bihm", "K": K, "batch_size": 100, "lr": lr, "epochs": max_epochs, "seed": seed},
        "data": data, "device": "cpu",
    }  # fmt: skip
    history = {k: [epoch_row(e + 1, (e + 1) * per_epoch, offset)[k] for e in range(epochs)] for k in epoch_row(1, 1)}
    meta = {
        "config": config, "data": {"name": data, "sha256": None, "dim": n_visible},
        "progress": {"epoch": epochs, "step": epochs * per_epoch, "best_valid": max(history["valid_log_ptilde"])},
        "history": history, "lr": lr, "run": name,
    }  # fmt: skip
    arrays = _params(tuple(layers), seed, n_visible, visible_mean)
    save_checkpoint(run.checkpoint_path, arrays, meta)
    save_checkpoint(run.best_path, arrays, meta)
    write_metrics(run.path / "metrics-1.h5", config, epochs, per_epoch, offset)
    set_status(run, state, epoch=epochs, step=epochs * per_epoch, pid=pid)
    return run


def set_status(run: RunFolder, state: str, pid: int | None = None, **fields) -> None:
    """status.json with a fixed 'updated' time; ``running`` gets a live pid (default: this process)."""
    status = {"state": state, "started": FIXED_UPDATED, "updated": FIXED_UPDATED, "host": socket.gethostname(), **fields}
    status["pid"] = pid if pid is not None else os.getpid()
    if state == "running":
        from bihm_app.store.runs import _process_start_ticks

        status["pid_start"] = _process_start_ticks(status["pid"])
    run.status_path.write_text(json.dumps(status), encoding="utf-8")


def make_corrupt_run(root: Path, name: str) -> RunFolder:
    """A run whose checkpoint is garbage (truncated HDF5)."""
    run = RunFolder(Path(root) / name)
    run.path.mkdir(parents=True)
    run.checkpoint_path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    set_status(run, "finished", epoch=1, step=10)
    return run
