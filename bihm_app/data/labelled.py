"""Labelled subsets and semi-supervised minibatches (thesis section 4.3).

The labelled set holds N training points balanced over the C classes (N/C each), chosen by a
seeded draw; the other training points are used without their labels. Every minibatch holds
``m`` labelled points (cycled through the labelled set, reshuffled on every pass) and ``B − m``
unlabelled ones, as the authors' code does (afcarl/helmholtz-machines, ``train-semi.py``:
``--batch-size 50,50`` labelled,unlabelled; ``semi_datasets.py``: N/10 per class). An epoch is
one pass over the unlabelled points. Orders depend only on (seed, epoch), so a resumed run sees
the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from bihm_app.data.batching import _uint8_tensor
from bihm_app.data.dataset import Dataset, epoch_generator
from bihm_app.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

_LABELLED_TAG = 0x6C61626C  # "labl": the choice of the labelled set
_LAB_ORDER_TAG = 0x6C6F7264  # order of the labelled stream
_UNL_ORDER_TAG = 0x756F7264  # order of the unlabelled points


def n_classes(ds: Dataset) -> int:
    """Number of classes of a labelled data set (largest label + 1 over all splits)."""
    ys = [ds.labels(s) for s in ds.split_names]
    if any(y is None for y in ys):
        missing = [s for s, y in zip(ds.split_names, ys) if y is None]
        raise DataError(f"data set '{ds.name}' has no labels for split(s) {', '.join(missing)}: "
                        "semi-supervised training needs labels (bmnist has them; `bihm data import` keeps y_train/y_valid/y_test)")  # fmt: skip
    return int(max(int(y.max()) for y in ys if len(y))) + 1


def labelled_indices(ds: Dataset, n: int, seed: int) -> np.ndarray:
    """Indices (sorted int64) of ``n`` training points balanced over the classes, drawn with ``seed``.

    Raises ConfigError (one line) when n is not positive, larger than the training set, not a
    multiple of the number of classes, or asks a class for more points than it has.
    """
    C = n_classes(ds)
    y = np.asarray(ds.labels("train"))
    if n < 1:
        raise ConfigError(f"--labels must be at least 1, got {n}")
    if n > len(y):
        raise ConfigError(f"--labels {n} is larger than the training split of '{ds.name}' ({len(y):,} points)")
    if n % C:
        raise ConfigError(f"--labels {n} cannot be balanced over the {C} classes of '{ds.name}' (use a multiple of {C})")
    per = n // C
    rng = epoch_generator(seed, 0, _LABELLED_TAG)
    chosen = []
    for c in range(C):
        idx = np.flatnonzero(y == c)
        if len(idx) < per:
            raise ConfigError(f"--labels {n}: class {c} of '{ds.name}' has only {len(idx)} training points (needs {per})")
        chosen.append(rng.choice(idx, size=per, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def labelled_per_batch(batch_size: int, wanted: int, n_labelled: int, n_unlabelled: int) -> int:
    """How many labelled points each minibatch holds: ``wanted``, at most the labelled set, and the
    whole batch when nothing is unlabelled."""
    if n_unlabelled == 0:
        return batch_size
    if not 1 <= wanted < batch_size:
        raise ConfigError(f"--labelled-per-batch: labelled points per batch must be in 1..{batch_size - 1} "
                          f"(with --batch {batch_size}), got {wanted}")  # fmt: skip
    return min(wanted, n_labelled)


def num_semisup_batches(n_train: int, n_labelled: int, batch_size: int, per_batch: int) -> int:
    """Minibatches in one epoch: one pass over the unlabelled points (or over the labelled set)."""
    n_unl = n_train - n_labelled
    if n_unl == 0:
        return -(-n_labelled // batch_size)
    return -(-n_unl // (batch_size - per_batch))


def semisup_batches(
    ds: Dataset,
    labelled: np.ndarray,
    batch_size: int,
    per_batch: int,
    *,
    epoch: int,
    seed: int,
    device="cpu",
    dtype=None,
) -> Iterator[tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]]:
    """Yield ``(x (b, D) float, y (b,) int64, is_labelled (b,) bool)`` for one epoch.

    The first ``per_batch`` rows of a batch are labelled points, the rest unlabelled ones (their
    y is the true label, which the trainer must not use; it is kept for monitoring).
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    x = _uint8_tensor(ds.get("train", epoch=epoch, seed=seed), device)
    y_all = torch.from_numpy(np.asarray(ds.labels("train"), dtype=np.int64)).to(x.device)
    n = x.shape[0]
    mask = np.zeros(n, dtype=bool)
    mask[labelled] = True
    unl = np.flatnonzero(~mask)
    n_batches = num_semisup_batches(n, len(labelled), batch_size, per_batch)
    u = batch_size - per_batch
    unl_order = unl[epoch_generator(seed, epoch, _UNL_ORDER_TAG).permutation(len(unl))] if len(unl) else unl
    need = n_batches * per_batch
    passes = -(-need // len(labelled))
    lab_order = np.concatenate(
        [labelled[epoch_generator(seed, epoch, _LAB_ORDER_TAG + j).permutation(len(labelled))] for j in range(passes)]
    )[:need]
    for b in range(n_batches):
        lab = lab_order[b * per_batch : (b + 1) * per_batch]
        rows = np.concatenate([lab, unl_order[b * u : (b + 1) * u]]) if u else lab
        idx = torch.from_numpy(rows).to(x.device)
        is_lab = torch.arange(len(rows), device=x.device) < len(lab)
        yield x.index_select(0, idx).to(dtype), y_all.index_select(0, idx), is_lab
