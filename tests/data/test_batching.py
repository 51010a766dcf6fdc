"""`batches` / `as_tensor`: every row once per epoch, deterministic order per (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bihm_app.data import as_tensor, batches, load_dataset, num_batches, shuffle_order
from bihm_app.errors import ConfigError


def _rows(t: torch.Tensor) -> list[bytes]:
    return sorted(r.tobytes() for r in t.to(torch.uint8).numpy())


def test_one_epoch_covers_every_row_once():
    ds = load_dataset("dna")
    out = list(batches(ds, "train", 128, epoch=0, seed=0))
    assert len(out) == num_batches(ds, "train", 128) == 11
    assert all(b.dtype == torch.float32 and b.shape[1] == 180 for b in out)
    assert [b.shape[0] for b in out] == [128] * 10 + [1400 - 1280]
    assert _rows(torch.cat(out)) == sorted(r.tobytes() for r in ds.get("train"))


def test_order_is_deterministic_in_seed_and_epoch():
    ds = load_dataset("dna")
    a = torch.cat(list(batches(ds, "train", 100, epoch=2, seed=5)))
    b = torch.cat(list(batches(ds, "train", 100, epoch=2, seed=5)))
    c = torch.cat(list(batches(ds, "train", 100, epoch=3, seed=5)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    order = shuffle_order(1400, epoch=2, seed=5)
    assert torch.equal(a, torch.from_numpy(ds.get("train")[order]).float())


def test_no_shuffle_keeps_file_order_and_drop_last():
    ds = load_dataset("nips")
    out = list(batches(ds, "valid", 30, epoch=0, seed=0, shuffle=False, drop_last=True, dtype=torch.float64))
    assert [b.shape[0] for b in out] == [30, 30, 30] and out[0].dtype == torch.float64
    assert np.array_equal(torch.cat(out).numpy(), ds.get("valid")[:90])


def test_dynamic_batches_follow_the_epoch_draw():
    ds = load_dataset("mnist-dyn")
    x0 = torch.cat(list(batches(ds, "train", 1000, epoch=0, seed=1, shuffle=False)))
    assert np.array_equal(x0.numpy().astype(np.uint8), ds.get("train", epoch=0, seed=1))
    x1 = as_tensor(ds, "train", epoch=1, seed=1)
    assert x1.shape == (50000, 784) and x1.dtype == torch.float32 and not torch.equal(x0, x1)


def test_as_tensor_static_split():
    ds = load_dataset("mushrooms")
    t = as_tensor(ds, "test")
    assert t.shape == (5624, 112) and t.dtype == torch.float32
    assert np.array_equal(t.numpy(), ds.get("test"))
    t[0, 0] = 7  # a copy: the cached data set is untouched
    assert ds.get("test")[0, 0] in (0, 1)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0, "seed": 0}, {"batch_size": 10, "seed": -1}])
def test_bad_batching_arguments(kwargs):
    ds = load_dataset("nips")
    with pytest.raises(ConfigError):
        list(batches(ds, "train", kwargs["batch_size"], epoch=0, seed=kwargs["seed"]))
