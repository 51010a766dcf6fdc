"""The estimators of `bihm eval` and `bihm logz` as runs of chunks that torchrun ranks share.

Every chunk of work — a block of up to ``chunk_rows`` (point, sample) rows of one batch of data
points, or a chunk of 2 log Z's outer samples — draws from its own generator, seeded from the
command's seed and the chunk's index. Rank r of W computes the chunks whose index ≡ r (mod W);
the per-point log-moments (logsumexp of log w and of 2 log w, and the sample count), or the
moments of Z²'s log-terms, are all-gathered and merged with logaddexp (:class:`LogMoments`), so the
estimates and their standard errors are those of one process drawing the same samples — exactly,
up to the order of floating-point sums. A single process (W = 1) runs the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from bihm_app.engine.estimators import (
    DataEstimates,
    Estimate,
    LogMoments,
    add_log_weights,
    chunk_rows,
    data_estimates,
    first_layer_logits,
    log_weights,
    log_z2_estimate,
    log_z2_terms,
    point_estimates_from,
)
from bihm_app.engine.model import BiHM, make_generator
from bihm_app.engine.passes import Workspace
from bihm_app.runner.train_loop import init_distributed

Progress = Callable[[int], None] | None


def init_sharding(device: str = "auto") -> tuple[int, int]:
    """(rank, world size): joins the process group under torchrun, (0, 1) otherwise."""
    return init_distributed(device)


def finish_sharding(world: int, clean: bool = True) -> None:
    """Leave the process group (a rank that exits while gloo's threads run aborts); after an error
    no barrier, which the other ranks might never reach."""
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        if clean:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def chunk_generator(seed: int, index: int, device: torch.device) -> torch.Generator:
    """The generator of chunk ``index`` of a command run with ``seed`` (the same on every rank)."""
    return make_generator((int(seed) * 1_000_003 + 7_919 * int(index) + 1) % (2**63 - 1), device)


def _all_gather(t: Tensor, world: int) -> Tensor:
    """(world, *t.shape): every rank's t."""
    if world == 1:
        return t.unsqueeze(0)
    parts = [torch.empty_like(t) for _ in range(world)]
    torch.distributed.all_gather(parts, t.contiguous())
    return torch.stack(parts)


def _merge_ranks(m: LogMoments, n_points: int, world: int, device) -> LogMoments:
    """Merge per-point moments (s1, s2 (n_points,), counts (n_points,)) across ranks."""
    if world == 1:
        return m
    packed = torch.stack([m.s1, m.s2, m.n.to(m.s1.dtype)]).to(device)
    allp = _all_gather(packed, world).cpu()  # (world, 3, n_points)
    return LogMoments(torch.logsumexp(allp[:, 0], 0), torch.logsumexp(allp[:, 1], 0), allp[:, 2].sum(0).round().long())


@torch.no_grad()
def local_moments(
    model: BiHM, x: Tensor, K: int, seed: int, batch: int = 100, progress: Progress = None,
    rank: int = 0, world: int = 1,
) -> tuple[LogMoments, LogMoments]:  # fmt: skip
    """This rank's per-point moments of log w and 2 log w over the rows of x (N, D): s1, s2 (N,) in
    float64 (−inf where it drew nothing) and per-point sample counts (N,)."""
    n_points = x.shape[0]
    inf = torch.full((n_points,), -math.inf, dtype=torch.float64)
    half = LogMoments(inf.clone(), inf.clone(), torch.zeros(n_points, dtype=torch.long))
    full = LogMoments(inf.clone(), inf.clone(), torch.zeros(n_points, dtype=torch.long))
    ws = Workspace()
    rows = chunk_rows(model.sizes, model.device)
    chunk = 0
    for b0 in range(0, n_points, batch):
        b1 = min(b0 + batch, n_points)
        told = float(b0)  # points reported so far (fractions of a sub-batch while its chunks run)
        for s0 in range(b0, b1, rows):
            sub = slice(s0, min(s0 + rows, b1))
            xs = x[sub].to(device=model.device, dtype=model.dtype)
            k_chunk = max(1, rows // xs.shape[0])
            h, f = LogMoments(), LogMoments()
            u1 = None  # q's first-layer logits of xs, once for all its chunks
            for k0 in range(0, K, k_chunk):
                k = min(k_chunk, K - k0)
                if chunk % world == rank:
                    u1 = first_layer_logits(model, xs) if u1 is None else u1
                    lp, lq = log_weights(model, xs, k, chunk_generator(seed, chunk, model.device), ws, u1)
                    add_log_weights(h, f, lp.double(), lq.double())
                chunk += 1
                if progress is not None and k0 + k < K:  # a large K: the bar moves within the batch
                    at = s0 + xs.shape[0] * (k0 + k) / K
                    progress(at - told)
                    told = at
            for acc, part in ((half, h), (full, f)):
                if part.s1 is not None:
                    acc.s1[sub], acc.s2[sub] = part.s1.cpu(), part.s2.cpu()
                    acc.n[sub] = part.n
        if progress is not None:
            progress(b1 - told)  # the batch's points in all (whole once it is done)
    return half, full


@torch.no_grad()
def evaluate_sharded(
    model: BiHM, x: Tensor, K: int, seed: int, batch: int = 100, progress: Progress = None,
    rank: int = 0, world: int = 1,
) -> DataEstimates:  # fmt: skip
    """log p̃*(x), log p(x) and ESS averaged over the rows of x (N, D) with K samples each, this rank's
    share of the chunks computed here and the moments merged across ranks (see the module docstring).

    ``progress(points)`` is called after every batch of points (the batch's points in all), and with a
    fraction of a point while the chunks of a large K run (so a bar moves during a long batch).
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    if x.shape[0] == 0:
        raise ValueError("no data to evaluate")
    half, full = local_moments(model, x, K, seed, batch, progress, rank, world)
    half = _merge_ranks(half, x.shape[0], world, model.device)
    full = _merge_ranks(full, x.shape[0], world, model.device)
    half.n, full.n = _count(half.n, K), _count(full.n, K)
    return data_estimates([point_estimates_from(half, full)], K)


def _count(n: Tensor, K: int) -> int:
    """Every point got all K samples across the ranks (the chunks partition them)."""
    if not bool((n == K).all()):
        raise RuntimeError(f"sharded evaluation lost samples: per-point counts {n.unique().tolist()}, expected {K}")
    return K


@torch.no_grad()
def log_z2_sharded(
    model: BiHM, n_samples: int, seed: int, n_inner: int = 1, chunk: int = 20_000, progress: Progress = None,
    rank: int = 0, world: int = 1,
) -> Estimate:  # fmt: skip
    """2 log Z (3.11) from ``n_samples`` outer samples in chunks shared by the ranks; the moments of the
    log-terms are merged across ranks, so mean and SE are those of one process with these samples."""
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples for 2 log Z, got {n_samples}")
    if n_inner < 1:
        raise ValueError(f"inner samples must be at least 1, got {n_inner}")
    ws = Workspace()
    acc = LogMoments()
    for c, start in enumerate(range(0, n_samples, chunk)):
        if c % world != rank:
            continue
        m = min(chunk, n_samples - start)
        terms = log_z2_terms(model, m, n_inner, chunk_generator(seed, c, model.device), ws).double().unsqueeze(0)
        acc.add(terms)
        if progress is not None:
            progress(m)
    if world > 1:
        local = torch.tensor(
            [acc.s1[0] if acc.s1 is not None else -math.inf, acc.s2[0] if acc.s2 is not None else -math.inf, acc.n],
            dtype=torch.float64, device=model.device,
        )  # fmt: skip
        allp = _all_gather(local, world).cpu()
        acc = LogMoments(torch.logsumexp(allp[:, 0], 0).view(1), torch.logsumexp(allp[:, 1], 0).view(1), int(allp[:, 2].sum()))
    if acc.n != n_samples:
        raise RuntimeError(f"sharded 2 log Z lost samples: {acc.n} of {n_samples}")
    return log_z2_estimate(acc)


def rank_share(total: int, chunk: int, rank: int, world: int) -> int:
    """How many of ``total`` units (in chunks of ``chunk``) rank ``rank`` of ``world`` computes."""
    n_chunks = math.ceil(total / chunk)
    return sum(min(chunk, total - c * chunk) for c in range(rank, n_chunks, world))


__all__ = ["init_sharding", "finish_sharding", "evaluate_sharded", "local_moments", "log_z2_sharded", "rank_share", "chunk_generator"]
