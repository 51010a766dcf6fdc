"""Minibatches for training: deterministic shuffles, one gather per epoch, cheap per-batch casts.

The order of an epoch depends only on (seed, epoch) through a numpy Generator (no global random
state), so a run resumed at epoch e sees exactly the batches it would have seen.
The split is moved to the device once per epoch as uint8 (4x smaller than float32); each batch is
one gather of its rows followed by a cast, so no float copy of the whole split is ever made.
benchmarks/bench_data.py compares this with indexing a pre-made float32 tensor.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from bihm_app.data.dataset import Dataset, epoch_generator
from bihm_app.errors import ConfigError

if TYPE_CHECKING:  # torch is imported lazily so `import bihm_app.data` stays light
    import torch

_SHUFFLE_TAG = 0x73687566  # "shuf"


def shuffle_order(n: int, *, epoch: int, seed: int) -> np.ndarray:
    """The permutation of `n` rows used in `epoch` for `seed` (int64)."""
    return epoch_generator(seed, epoch, _SHUFFLE_TAG).permutation(n)


def _uint8_tensor(x: np.ndarray, device) -> "torch.Tensor":
    import torch

    with warnings.catch_warnings():
        # cached arrays are read-only; the tensor is only read (gathered / copied to a device)
        warnings.filterwarnings("ignore", message=".*not writable.*")
        t = torch.from_numpy(x)
    return t.to(device) if str(device) != "cpu" else t


def as_tensor(
    ds: Dataset, split: str, *, epoch: int | None = None, seed: int = 0, device="cpu", dtype=None
) -> "torch.Tensor":
    """The whole split as a (N, dim) tensor (float32 by default) on `device`."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    t = _uint8_tensor(ds.get(split, epoch=epoch, seed=seed), device)
    return t.to(dtype) if t.dtype != dtype else t.clone()


def batches(
    ds: Dataset,
    split: str,
    batch_size: int,
    *,
    epoch: int,
    seed: int,
    shuffle: bool = True,
    device="cpu",
    dtype=None,
    drop_last: bool = False,
) -> Iterator["torch.Tensor"]:
    """Yield (B, dim) tensors covering `split` once; the order depends only on (seed, epoch).

    For a dynamic set the train split is a fresh binarization for (seed, epoch) as well.
    The last batch is smaller unless `drop_last`.
    """
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    dtype = torch.float32 if dtype is None else dtype
    x = _uint8_tensor(ds.get(split, epoch=epoch, seed=seed), device)
    n = x.shape[0]
    stop = n - n % batch_size if drop_last else n
    if not shuffle:
        for start in range(0, stop, batch_size):
            yield x[start : start + batch_size].to(dtype)
        return
    order = torch.from_numpy(shuffle_order(n, epoch=epoch, seed=seed)).to(x.device)
    for start in range(0, stop, batch_size):
        yield x.index_select(0, order[start : start + batch_size]).to(dtype)  # (B, dim)


def num_batches(ds: Dataset, split: str, batch_size: int, drop_last: bool = False) -> int:
    """How many batches `batches` yields for one epoch."""
    n = ds.size(split)
    return n // batch_size if drop_last else -(-n // batch_size)
