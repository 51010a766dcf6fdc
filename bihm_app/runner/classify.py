"""Classification with a semi-supervised BiHM (thesis chapter 4): the use-case behind
``bihm classify`` and the classification part of ``bihm eval``.

The classifier is argmax_y B̃(x, y) (4.5); its confidence p̃*(y|x) = B̃/Ã uses Ã with y summed
exactly over the classes (so the C confidences of a point sum to one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bihm_app.data import as_tensor, check_compatible, load_dataset
from bihm_app.data.dataset import Dataset
from bihm_app.engine.semisup import SemiBiHM, SemiEvaluation, evaluate_semisup
from bihm_app.errors import ConfigError, DataError
from bihm_app.runner.seeds import generator


@dataclass
class Classification:
    """A split classified by a semi-supervised model, with its most confidently wrong points."""

    evaluation: SemiEvaluation
    data: str
    split: str
    image_shape: tuple[int, int] | None
    wrong_index: np.ndarray  # (w,) indices into the split, most confident mistake first
    wrong_confidence: np.ndarray  # (w,) p̃*(predicted | x)
    wrong_images: np.ndarray  # (w, D) uint8 0/1

    def to_dict(self) -> dict:
        e = self.evaluation
        return {
            "data": self.data,
            "split": self.split,
            **e.to_dict(),
            "confidently_wrong": [
                {"index": int(i), "true": int(e.y[i]), "predicted": int(e.predicted[i]), "confidence": float(c)}
                for i, c in zip(self.wrong_index, self.wrong_confidence)
            ],
        }


def require_labels(model, where: str) -> SemiBiHM:
    """The model if it has a label layer, else a one-line ConfigError naming ``where``."""
    if not isinstance(model, SemiBiHM):
        raise ConfigError(f"{where} has no label layer: train one with `bihm train --labels N`")
    return model


def labelled_split(ds: Dataset, split: str, model: SemiBiHM, where: str, n: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (N, D), y (N,)) of a split, checked against the model (dimension, labels, classes)."""
    check_compatible(ds, model.sizes[0], where)
    if split not in ds.split_names:
        raise ConfigError(f"data set {ds.name} has no split {split!r} (splits: {', '.join(ds.split_names)})")
    y = ds.labels(split)
    if y is None:
        raise DataError(f"data set '{ds.name}' has no labels for split '{split}'")
    y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    if len(y) and int(y.max()) >= model.n_classes:
        raise DataError(f"data set '{ds.name}' split '{split}' has label {int(y.max())}, the model knows {model.n_classes} classes")
    x = as_tensor(ds, split, device=model.device)
    if n:
        x, y = x[:n], y[:n]
    return x, y.to(model.device)


def classify_split(
    model: SemiBiHM,
    data: str,
    split: str,
    K: int,
    seed: int = 0,
    n: int = 0,
    batch: int = 100,
    n_wrong: int = 32,
    where: str = "checkpoint",
    progress: Callable[[int], None] | None = None,
) -> Classification:
    """Error ± SE, per-class errors, confusion matrix and the ``n_wrong`` most confident mistakes."""
    if K < 1:
        raise ConfigError(f"-K must be at least 1, got {K}")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    ds = load_dataset(data)
    x, y = labelled_split(ds, split, require_labels(model, where), where, n)
    ev = evaluate_semisup(model, zip(x.split(batch), y.split(batch)), K, generator(seed, "eval", model.device, index=K),
                          proposal="sum", progress=progress)  # fmt: skip
    conf = ev.log_py_all.gather(1, ev.predicted.unsqueeze(1)).squeeze(1).exp()
    wrong = torch.nonzero(ev.predicted != ev.y).squeeze(1)
    order = wrong[torch.argsort(conf[wrong], descending=True)][:n_wrong]
    images = x[order.to(x.device)].cpu().numpy().astype(np.uint8) if len(order) else np.zeros((0, x.shape[1]), np.uint8)
    return Classification(ev, ds.name, split, ds.image_shape, order.numpy(), conf[order].numpy(), images)
