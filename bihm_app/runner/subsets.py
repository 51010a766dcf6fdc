"""Which points an option such as ``--n N`` or ``--k10k-points N`` evaluates: N points drawn
uniformly at random, without replacement, from the split with a recorded seed — never the first N.

Splits may be sorted: binarized MNIST's test split is sorted by class (its first 980 digits are
zeros), so its first 1,000 points are zeros and ones. Every point of a uniform random subset is
equally likely, so each class appears in the subset in its share of the split, in expectation. The
subset depends only on (split size, N, seed) — the same points for every K of a sweep — and the
seed (stream ``subset`` of :mod:`bihm_app.runner.seeds`) is written next to the results
(:func:`subset_record`), so the same points can be taken again.
"""

from __future__ import annotations

import numpy as np

from bihm_app.runner.seeds import derive_seed

__all__ = ["subset_indices", "subset_record", "describe_points"]


def subset_indices(size: int, n: int, seed: int) -> np.ndarray | None:
    """Indices (sorted, int64) of ``n`` points drawn uniformly without replacement from a split of
    ``size`` points with ``seed``; None for the whole split (``n`` ≤ 0 or ≥ ``size``)."""
    if n <= 0 or n >= size:
        return None
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, "subset")))
    return np.sort(rng.choice(size, size=int(n), replace=False)).astype(np.int64)


def subset_record(size: int, n: int, seed: int) -> dict:
    """What to write next to results computed on :func:`subset_indices`: ``{"subset_seed": seed,
    "subset_of": size}`` for a random subset, ``{}`` for the whole split."""
    return {} if n <= 0 or n >= size else {"subset_seed": int(seed), "subset_of": int(size)}


def describe_points(n: int, entry: dict | None = None, what: str = "points") -> str:
    """'1,000 points drawn at random (seed 0)' or '10,000 points' for a results entry."""
    seed = (entry or {}).get("subset_seed")
    return f"{n:,} {what}" + (f" drawn at random (seed {seed})" if seed is not None else "")
