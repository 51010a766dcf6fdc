"""runner/subsets: every "first N points" option takes a seeded uniform random subset instead.

bmnist's test split is sorted by class (its first 980 digits are zeros, the next 1,135 ones): the
first 1,000 test points are zeros and ones, so `bihm classify --split test --n 1000` and the
K = 10⁴ row of `bihm repro mnist` measured two classes only.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

from bihm_app.data import load_dataset
from bihm_app.engine.model import ModelConfig
from bihm_app.engine.semisup import LabelConfig, SemiBiHM
from bihm_app.runner.classify import labelled_split
from bihm_app.runner.subsets import describe_points, subset_indices, subset_record


def test_subsets_are_seeded_uniform_draws_without_replacement():
    """n sorted distinct indices of the split, the same for the same (size, n, seed), others for
    another seed; the whole split (None) for n = 0 or n ≥ size. Catches a subset that depends on K
    (a sweep would compare different points) or on the call order."""
    a = subset_indices(10_000, 1_000, 0)
    assert a is not None and a.shape == (1_000,) and a.dtype == np.int64
    assert np.all(np.diff(a) > 0) and 0 <= a[0] and a[-1] < 10_000
    assert np.array_equal(a, subset_indices(10_000, 1_000, 0))
    assert not np.array_equal(a, subset_indices(10_000, 1_000, 1))
    assert subset_indices(10_000, 0, 0) is None and subset_indices(10_000, 10_000, 0) is None
    assert subset_indices(10, 50, 3) is None
    assert subset_record(10_000, 1_000, 7) == {"subset_seed": 7, "subset_of": 10_000}
    assert subset_record(10_000, 0, 7) == {} and subset_record(10_000, 10_000, 7) == {}
    assert describe_points(1_000, subset_record(10_000, 1_000, 7)) == "1,000 points drawn at random (seed 7)"
    assert describe_points(10_000, {}) == "10,000 points"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_subset_of_the_sorted_bmnist_test_split_holds_every_digit_in_proportion(seed):
    """labelled_split(bmnist, test, n = 1000): each digit's count within the hypergeometric
    spread of its share of the split (Bonferroni over the 10 digits, false-alarm rate 10⁻⁴), and
    the rows are the split's rows at the returned indices. The first 1,000 points (the old
    behaviour) hold 980 zeros and 20 ones: every other digit is 0, about 10 SDs out."""
    ds = load_dataset("bmnist")
    model = SemiBiHM(ModelConfig(784, (5,)), LabelConfig(10, "bottom"))
    x, y, idx = labelled_split(ds, "test", model, "test model", n=1_000, seed=seed)
    y_all = np.asarray(ds.labels("test"))
    N, n = len(y_all), 1_000
    assert idx is not None and len(idx) == n and np.array_equal(y.numpy(), y_all[idx])
    assert torch.equal(x.cpu(), torch.as_tensor(np.asarray(ds.get("test"), dtype=np.float32)[idx]))
    counts, shares = np.bincount(y.numpy(), minlength=10), np.bincount(y_all, minlength=10) / N
    sd = np.sqrt(n * shares * (1 - shares) * (N - n) / (N - 1))  # hypergeometric
    z = NormalDist().inv_cdf(1 - 1e-4 / 20)
    assert np.all(np.abs(counts - n * shares) < z * sd), (counts, n * shares)
    first = np.bincount(y_all[:n], minlength=10)
    assert np.any(np.abs(first - n * shares) > z * sd)  # the first 1,000 would fail the same check
    assert math.isclose(float(shares.sum()), 1.0)
