"""A small semi-supervised run on the embedded binarized MNIST for the dashboard tests.

Its label layer hangs at the bottom (thesis Sec. 4.6) and is set, not trained: q(y | x, h_1) =
softmax(V_x x + V_h h_1 + e) with V_x, e a (tempered) Bernoulli naive-Bayes classifier fitted to
the first 5,000 training digits, and V_h the Glorot initialisation scaled up so that the predicted
labels depend on the sampled h_1 (and so on the seed and K). It classifies about 4 test digits in 5
correctly, in about a second at K = 10, which gives the classify view a realistic confusion
matrix and realistic mistakes without a training run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import RunFolder
from tests.tui.runs_fixture import set_status

LAYERS = (8, 4)
TEMPERATURE = 0.1  # naive Bayes is wildly over-confident; a tenth of its log-odds gives p̃* in (0.3, 1)
V_H_SCALE = 3.0


def semi_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    import torch

    from bihm_app.data import load_dataset
    from bihm_app.engine.model import ModelConfig, make_generator
    from bihm_app.engine.semisup import LabelConfig, SemiBiHM

    ds = load_dataset("bmnist")
    x = np.asarray(ds.get("train")[:5000], dtype=np.float64)
    y = np.asarray(ds.labels("train")[:5000])
    p = np.stack([(x[y == c].sum(0) + 1) / ((y == c).sum() + 2) for c in range(10)])  # Laplace-smoothed
    log_prior = np.log(np.bincount(y, minlength=10) / len(y))
    model = SemiBiHM(ModelConfig(784, LAYERS), LabelConfig(10, "bottom"), generator=make_generator(seed, "cpu"))
    with torch.no_grad():
        model.y_q_weights_x.copy_(torch.from_numpy(TEMPERATURE * (np.log(p) - np.log1p(-p))))
        model.y_q_biases.copy_(torch.from_numpy(TEMPERATURE * (np.log1p(-p).sum(1) + log_prior)))
        model.y_q_weights.mul_(V_H_SCALE)
    arrays = {f"params/{k}": v.detach().numpy().copy() for k, v in model.state_dict().items()}
    arrays["labels/train_indices"] = np.arange(0, 5000, 50, dtype=np.int64)
    return arrays


def make_semi_run(root: Path, name: str = "semi", arrays: dict | None = None) -> RunFolder:
    """A finished-looking semi-supervised run: checkpoint.h5, best.h5 and status.json."""
    run = RunFolder(Path(root) / name)
    run.path.mkdir(parents=True)
    labels = {"n_classes": 10, "placement": "bottom", "proposal": "q", "gamma": 0.0}
    config = {
        "model": {"n_visible": 784, "layers": list(LAYERS), "labels": labels},
        "train": {"method": "bihm", "K": 10, "batch_size": 100, "lr": 1e-3, "epochs": 1, "seed": 0},
        "semisup": {"n_labels": 100}, "data": "bmnist", "device": "cpu",
    }  # fmt: skip
    meta = {
        "config": config, "data": {"name": "bmnist", "sha256": None, "dim": 784},
        "progress": {"epoch": 1, "step": 10, "best_valid": -150.0}, "history": {}, "lr": 1e-3, "run": name,
    }  # fmt: skip
    arrays = arrays if arrays is not None else semi_arrays()
    save_checkpoint(run.checkpoint_path, arrays, meta)
    save_checkpoint(run.best_path, arrays, meta)
    set_status(run, "finished", epoch=1, step=10)
    return run
