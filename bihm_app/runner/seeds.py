"""Every random stream of bihm-app, derived from the one user seed in one place.

A run, an evaluation or a picture has one integer seed (``--seed``, ``TrainConfig.seed``). Each
purpose gets its own ``torch.Generator`` seeded by :func:`derive_seed` from (seed, stream, rank,
index), so that one purpose drawing more or fewer numbers never shifts another, and a resumed run
draws exactly what an uninterrupted one would have drawn.

========== ==================================== ================================================
stream     seed                                 used for
========== ==================================== ================================================
data order data layer: ``epoch_generator(seed,  the permutation and binarisation of an epoch,
           epoch, tag)`` (``data/batching.py``,  the labelled set and its batches (numpy
           ``data/labelled.py``)                 generators, one tag per purpose)
init       seed                                 the initial parameters of a fresh model
training   seed + 1 + 100003·rank + 7·index     the training step's samples; ``index`` is the
                                                step a resume starts at, or the rollback count
rollback   seed + 1 + 7·index                   the training stream after the index-th NaN/inf
                                                rollback (the same on every rank)
validation 1000003·seed + 17 + index            the per-epoch validation estimate (index = epoch)
z          7919·seed + 29 + index               the per-epoch 2 log Z estimate (index = epoch)
eval       1009·seed + index                    ``bihm eval`` at K = index (chunk c of a sharded
                                                estimate: ``sharding.chunk_generator(·, c)``)
eval_z     seed + 1                             2 log Z of ``bihm eval`` and ``bihm logz`` (the same
                                                per-chunk sub-streams)
sampling   seed                                 Gibbs chains, resampling, layer-wise pictures
mask       seed                                 the pixels a ``random`` inpainting mask hides
subset     104729·seed + 41                     the points a ``--n N`` / ``--k10k-points N`` option
                                                takes from a split (``runner/subsets.py``; numpy)
========== ==================================== ================================================

The formulas are the ones the code used before they were gathered here, so runs written by
earlier versions resume and re-evaluate with the same numbers.
"""

from __future__ import annotations

from bihm_app.errors import ConfigError

__all__ = ["STREAMS", "MAX_SEED", "check_seed", "derive_seed", "generator"]

#: The largest user seed: every derived seed (up to 1,000,003 × seed + …) stays a 64-bit integer.
MAX_SEED = 2**40 - 1

STREAMS = ("init", "training", "rollback", "validation", "z", "eval", "eval_z", "sampling", "mask", "subset")


def check_seed(seed: int, option: str = "--seed") -> int:
    """``seed`` as an int if 0 <= seed <= MAX_SEED, else a ConfigError naming ``option``."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{option} must be between 0 and {MAX_SEED:,} (2**40 - 1), got {seed}")
    return int(seed)


def derive_seed(seed: int, stream: str, *, rank: int = 0, index: int = 0) -> int:
    """The seed of one named random stream (table in the module docstring); a ConfigError for a
    user seed out of range (:func:`check_seed`)."""
    seed, rank, index = check_seed(seed), int(rank), int(index)
    if stream in ("init", "sampling", "mask"):
        return seed
    if stream == "training":
        return seed + 1 + 100_003 * rank + 7 * index
    if stream == "rollback":
        return seed + 1 + 7 * index
    if stream == "validation":
        return seed * 1_000_003 + 17 + index
    if stream == "z":
        return seed * 7_919 + 29 + index
    if stream == "eval":
        return seed * 1009 + index
    if stream == "eval_z":
        return seed + 1
    if stream == "subset":
        return seed * 104_729 + 41
    raise ValueError(f"unknown random stream {stream!r} (one of {', '.join(STREAMS)})")


def generator(seed: int, stream: str, device="cpu", *, rank: int = 0, index: int = 0):
    """A ``torch.Generator`` on ``device`` for one named stream."""
    from bihm_app.engine.model import make_generator

    return make_generator(derive_seed(seed, stream, rank=rank, index=index), device)
