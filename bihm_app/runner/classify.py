"""Classification with a semi-supervised BiHM (thesis chapter 4): the use-case behind
``bihm classify``, the dashboard's classify view and the classification part of ``bihm eval``.

The classifier is argmax_y B̃(x, y) (4.5); its confidence p̃*(y|x) = B̃/Ã uses Ã with y summed
exactly over the classes (so the C confidences of a point sum to one).

``bihm classify`` and the dashboard both call :func:`classify_run` (load the checkpoint, classify a
split); :func:`ranked` orders the points for pictures (most confident mistakes first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bihm_app.data import as_tensor, check_compatible, load_dataset
from bihm_app.data.dataset import Dataset
from bihm_app.engine.semisup import SemiBiHM, SemiEvaluation, evaluate_semisup
from bihm_app.errors import ConfigError, DataError
from bihm_app.runner.seeds import generator
from bihm_app.runner.subsets import subset_indices, subset_record

__all__ = ["Classification", "require_labels", "labelled_split", "classify_split", "classify_run", "ranked", "check_labelled"]


@dataclass
class Classification:
    """A split classified by a semi-supervised model, with its most confidently wrong points."""

    evaluation: SemiEvaluation
    data: str
    split: str
    image_shape: tuple[int, int] | None
    wrong_index: np.ndarray  # (w,) indices into the classified points, most confident mistake first
    wrong_confidence: np.ndarray  # (w,) p̃*(predicted | x)
    wrong_images: np.ndarray  # (w, D) uint8 0/1
    points: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.uint8))  # (N, D) uint8, the split
    confidence: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (N,) p̃*(predicted | x)
    checkpoint: str = ""  # the file the model came from (set by classify_run)
    placement: str = ""  # where the label hangs: top | bottom
    seed: int = 0
    split_index: np.ndarray | None = None  # (N,) the classified points' indices in the split (None: all of it)
    subset: dict = field(default_factory=dict)  # {"subset_seed", "subset_of"} when a random subset (runner/subsets.py)

    def index_in_split(self, i: int) -> int:
        """The split index of the i-th classified point."""
        return int(i) if self.split_index is None else int(self.split_index[i])

    def to_dict(self) -> dict:
        e = self.evaluation
        return {
            "data": self.data,
            "split": self.split,
            **e.to_dict(),
            **self.subset,
            "confidently_wrong": [
                {"index": self.index_in_split(i), "true": int(e.y[i]), "predicted": int(e.predicted[i]), "confidence": float(c)}
                for i, c in zip(self.wrong_index, self.wrong_confidence)
            ],
        }


def ranked(res: Classification, true: int | None = None, predicted: int | None = None) -> np.ndarray:
    """Indices of the split's points, the most telling first: the mistakes by decreasing confidence
    p̃*(predicted | x), then the correct points by increasing confidence (the hardest ones the model
    got right); only points of true class ``true`` and predicted class ``predicted`` when given."""
    y = res.evaluation.y.numpy()
    pred = res.evaluation.predicted.numpy()
    keep = np.ones(len(y), bool)
    if true is not None:
        keep &= y == true
    if predicted is not None:
        keep &= pred == predicted
    idx = np.flatnonzero(keep)
    right = pred[idx] == y[idx]
    conf = res.confidence[idx].astype(np.float64)
    return idx[np.lexsort((idx, np.where(right, conf, -conf), right))]


def check_labelled(target: str | Path, root: Path, which: str = "best") -> dict:
    """The label section of a run's checkpoint (its meta only: no array is read), or a one-line
    ConfigError when the run has no label layer. The dashboard asks this before opening its
    classify view."""
    from bihm_app.store.checkpoint import read_meta
    from bihm_app.store.runs import resolve_checkpoint

    path = resolve_checkpoint(target, Path(root), which=which)
    labels = ((read_meta(path).get("config") or {}).get("model") or {}).get("labels")
    if not isinstance(labels, dict):
        raise ConfigError(f"run {Path(str(target)).name} has no label layer (not semi-supervised): "
                          "train one with `bihm train --labels N`")  # fmt: skip
    return labels


def classify_refusal(name: str, root: Path) -> str | None:
    """Why run ``name`` cannot be classified with — no checkpoint yet, or none readable (the words
    of the runs list's refusals, :mod:`bihm_app.runner.preflight`), or no label layer — or None.
    The dashboard asks this before opening its classify view (and titles the answer "refused")."""
    from bihm_app.runner.preflight import usable_checkpoint
    from bihm_app.store.runs import open_run

    refusal = usable_checkpoint(open_run(name, root)).refusal(name, "classify with")
    if refusal is None:
        try:
            check_labelled(name, root)
        except ConfigError as exc:  # an unsupervised run: refused like the rest, not an "error"
            return str(exc)
    return refusal


def require_labels(model, where: str) -> SemiBiHM:
    """The model if it has a label layer, else a one-line ConfigError naming ``where``."""
    if not isinstance(model, SemiBiHM):
        raise ConfigError(f"{where} has no label layer: train one with `bihm train --labels N`")
    return model


def labelled_split(
    ds: Dataset, split: str, model: SemiBiHM, where: str, n: int = 0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray | None]:
    """(x (N, D), y (N,), their indices in the split or None) of a split, checked against the model
    (dimension, labels, classes): all of it, or ``n`` points drawn at random with ``seed``
    (:mod:`bihm_app.runner.subsets`: never the first n — bmnist's test split is sorted by class)."""
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
    idx = subset_indices(len(y), n, seed)
    if idx is not None:
        x, y = x[torch.from_numpy(idx).to(x.device)], y[torch.from_numpy(idx)]
    return x, y.to(model.device), idx


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
    on_start: Callable[[int], None] | None = None,
) -> Classification:
    """Error ± SE, per-class errors, confusion matrix and the ``n_wrong`` most confident mistakes.

    ``on_start(N)`` is told how many points will be classified before the first batch;
    ``progress(b)`` after each batch of b points (an exception raised there stops the work).
    """
    if K < 1:
        raise ConfigError(f"-K must be at least 1, got {K}")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    if n < 0:
        raise ConfigError(f"--n must be at least 0 (0: the whole split), got {n}")
    from bihm_app.runner.budget import check_samples_fit, check_work

    # absurd sizes are one line, not an overflow traceback (the engine streams over K: memory grows with the batch)
    check_work(model.cfg, batch * K * model.n_classes, f"--batch {batch:,} × -K {K:,}")
    check_samples_fit(model.cfg, batch * model.n_classes, model.device, f"--batch {batch:,}")
    ds = load_dataset(data)
    x, y, idx = labelled_split(ds, split, require_labels(model, where), where, n, seed)
    if on_start is not None:
        on_start(len(y))
    ev = evaluate_semisup(model, zip(x.split(batch), y.split(batch)), K, generator(seed, "eval", model.device, index=K),
                          proposal="sum", progress=progress)  # fmt: skip
    # p̃*(predicted | x) ≤ 1; float32 rounding of exp(log p̃*) can land a hair above it
    conf = ev.log_py_all.gather(1, ev.predicted.unsqueeze(1)).squeeze(1).exp().clamp(max=1.0).numpy()
    points = x.cpu().numpy().astype(np.uint8)
    res = Classification(ev, ds.name, split, ds.image_shape, np.zeros(0, np.int64), np.zeros(0), points[:0],
                         points=points, confidence=conf, seed=seed, split_index=idx,
                         subset=subset_record(ds.size(split), n, seed))  # fmt: skip
    order = ranked(res)
    order = order[(ev.predicted.numpy() != ev.y.numpy())[order]][:n_wrong]
    res.wrong_index, res.wrong_confidence, res.wrong_images = order, conf[order], points[order]
    return res


def classify_run(
    target: str | Path,
    root: Path,
    split: str = "test",
    K: int = 100,
    *,
    seed: int = 0,
    n: int = 0,
    batch: int = 100,
    n_wrong: int = 32,
    which: str = "best",
    device: str | None = "auto",
    cache: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Classification:
    """Load a semi-supervised run's (or checkpoint's) model and classify ``split`` with it: the one
    function behind ``bihm classify`` and the dashboard's classify view (same seed, same numbers)."""
    from bihm_app.runner.models import load_model

    lm = load_model(target, Path(root), device, which, cache=cache, labels_ok=True)
    model = require_labels(lm.model, f"checkpoint {lm.path}")
    res = classify_split(model, lm.meta["data"]["name"], split, K, seed=seed, n=n, batch=batch, n_wrong=n_wrong,
                         where=f"checkpoint {lm.path}", progress=progress, on_start=on_start)  # fmt: skip
    res.checkpoint, res.placement = str(lm.meta["_path"]), model.labels.placement
    return res
