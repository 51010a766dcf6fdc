"""Importance-sampling estimators of a BiHM (bihm-math.md, "Importance-sampling estimators" and 3.11).

Every estimator streams over K (and over data) in chunks of at most :func:`chunk_rows` (point,
sample) rows — about :data:`CHUNK_ELEMENTS` numbers per buffer, ~1,270 rows for paper12 — so
K = 100,000 or 10⁷ Z-samples run in the same small memory as K = 10, works in log space
(logsumexp) and returns a standard error with its mean.

With ``log w_k = ½ [log p(x, h_k) − log q(h_k | x)]``, h_k ~ q(h | x):

* log p̃*(x) ≈ 2 [logsumexp_k log w_k − log K]        (3.5)
* log p(x)  ≈ logsumexp_k 2 log w_k − log K           (3.6)
* ESS       = (Σ w)² / Σ w²  (as a fraction of K)     (2.5)
* Z² = E_{x,h~p} E_{h'~q(h|x)} sqrt(p(x,h') q(h|x) / (p(x,h) q(h'|x)))      (3.11)
* log p*(x) = log p̃*(x) − 2 log Z                   (3.3)

Standard errors of a log-mean-of-weights use the delta method: Var[log ŵ] ≈ Var[w] / (K E[w]²),
estimated from the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from bihm_app.engine.model import BiHM
from bihm_app.engine.passes import Products, Workspace, log_weights_pass, z2_terms_pass

#: Numbers per (rows, D + Σ n_l) buffer in a chunk of an estimator (8 MB in float32). Measured on
#: paper12 with the layer-major buffers: 2²¹ beat 2²⁰ by 4–15 % (eval, 2 log Z, Gibbs), 2²² and 2²³
#: were no better; smaller chunks pay the passes' fixed costs (~50 products and sums) more often.
CHUNK_ELEMENTS = 1 << 21


#: The same on an accelerator, where a chunk's cost is its kernel launches, not cache misses: with
#: CPU-sized chunks (~600 rows for paper12, 2²⁰ numbers then) evaluation on an H100 ran 25× slower
#: than one 10,000-row chunk. 32 M numbers (128 MB in float32) per buffer keeps memory flat in K.
ACCEL_CHUNK_ELEMENTS = 1 << 25


def chunk_rows(sizes: tuple[int, ...], device: torch.device | str | None = None) -> int:
    """(point, sample) rows per chunk for a model of these sizes on ``device`` (default: the CPU):
    CHUNK_ELEMENTS / (D + Σ n_l) between 256 (tiny chunks cost more in overhead than they save) and
    65,536; on an accelerator ACCEL_CHUNK_ELEMENTS / (D + Σ n_l), at most 2²⁰."""
    if device is not None and torch.device(device).type != "cpu":
        return max(256, min(1 << 20, ACCEL_CHUNK_ELEMENTS // max(1, sum(sizes))))
    return max(256, min(1 << 16, CHUNK_ELEMENTS // max(1, sum(sizes))))


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate with its standard error."""

    mean: float
    se: float

    def __sub__(self, other: "Estimate") -> "Estimate":
        return Estimate(self.mean - other.mean, math.hypot(self.se, other.se))

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.se:.3f}"


class LogMoments:
    """Running logsumexp of r·v for r = 1, 2 over a stream of log-values v (per data point).

    Gives log-mean of exp(v) and the delta-method standard error of that log-mean. Two sets of
    moments of disjoint samples combine exactly (:meth:`merge`): that is how sharded estimates
    (torchrun ranks) are put together.
    """

    def __init__(self, s1: Tensor | None = None, s2: Tensor | None = None, n: int = 0) -> None:
        self.s1: Tensor | None = s1  # (B,) logsumexp v
        self.s2: Tensor | None = s2  # (B,) logsumexp 2v
        self.n = n

    def merge(self, other: "LogMoments") -> "LogMoments":
        """The moments of both streams together."""
        if other.s1 is None:
            return self
        if self.s1 is None:
            return other
        return LogMoments(torch.logaddexp(self.s1, other.s1), torch.logaddexp(self.s2, other.s2), self.n + other.n)

    def add(self, v: Tensor) -> None:
        """v: (B, k) log-values of k new samples."""
        a1, a2 = torch.logsumexp(v, 1), torch.logsumexp(2 * v, 1)
        if self.s1 is None:
            self.s1, self.s2 = a1, a2
        else:
            self.s1 = torch.logaddexp(self.s1, a1)
            self.s2 = torch.logaddexp(self.s2, a2)
        self.n += v.shape[1]

    def log_mean(self) -> Tensor:
        """log (1/n Σ exp v), (B,)."""
        return self.s1 - math.log(self.n)

    def se_of_log_mean(self) -> Tensor:
        """Delta-method SE of log-mean: sqrt((E[e^{2v}]/E[e^v]² − 1) / n), (B,)."""
        ratio = torch.exp(self.s2 - 2 * self.s1 + math.log(self.n))  # n Σe^{2v} / (Σe^v)²  = E[w²]/E[w]²
        return torch.sqrt(torch.clamp(ratio - 1.0, min=0.0) / self.n)

    def ess_fraction(self) -> Tensor:
        """(Σ w)² / Σ w² / n, (B,)."""
        return torch.exp(2 * self.s1 - self.s2 - math.log(self.n))


@dataclass
class PointEstimates:
    """Per-data-point importance-sampling estimates, each (B,) tensors."""

    log_ptilde: Tensor  # log p̃*(x)   (3.5)
    log_ptilde_se: Tensor
    log_p: Tensor  # log p(x)     (3.6)
    log_p_se: Tensor
    ess: Tensor  # ESS fraction of q(h|x) for p*(h|x)    (2.5)


@torch.no_grad()
def log_weights(
    model: BiHM, x: Tensor, K: int, generator: torch.Generator | None, ws: Workspace | None = None,
    u1: Tensor | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(log p(x, h_k), log q(h_k | x)) for K fresh samples h_k ~ q(h | x).  x (B, D) -> two (B, K).

    ``u1``: q's first-layer logits of x (:func:`first_layer_logits`) when the caller draws several
    chunks of samples for the same points (computed once instead of once per chunk)."""
    return log_weights_pass(model, x, K, generator, ws=ws, u1=u1)


@torch.no_grad()
def first_layer_logits(model: BiHM, x: Tensor) -> Tensor:
    """U_1 x + d_1 (B, n_1): q's first-layer logits, the same numbers the sampling pass computes.
    Evaluating many points draws few samples per point per chunk (chunks hold ≤ :func:`chunk_rows`
    rows); recomputing these each chunk cost 22 % of an evaluation of 1,000 points at K = 20."""
    return Products(model).logits("q", 1, x)


@torch.no_grad()
def point_estimates(
    model: BiHM, x: Tensor, K: int, generator: torch.Generator | None, k_chunk: int | None = None,
    ws: Workspace | None = None,
) -> PointEstimates:
    """log p̃*(x) (3.5), log p(x) (3.6) and ESS (2.5) for each row of x (B, D), streaming over K.

    Memory is bounded by B × min(K, k_chunk) samples whatever K is (default k_chunk:
    chunk_rows // B).
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    k_chunk = k_chunk or max(1, chunk_rows(model.sizes, model.device) // max(1, x.shape[0]))
    ws = ws or Workspace()
    half = LogMoments()  # over log w = ½(log p − log q): p̃* and ESS
    full = LogMoments()  # over 2 log w = log p − log q: p(x)
    done = 0
    u1 = first_layer_logits(model, x) if K > k_chunk else None
    with ws.fixed_weights():
        while done < K:
            k = min(k_chunk, K - done)
            add_log_weights(half, full, *log_weights(model, x, k, generator, ws, u1))
            done += k
    return point_estimates_from(half, full)


def add_log_weights(half: LogMoments, full: LogMoments, log_p: Tensor, log_q: Tensor) -> None:
    """Add samples (log p(x, h_k), log q(h_k | x)), each (B, k), to the moments of log w and 2 log w."""
    log_w = 0.5 * (log_p - log_q)  # (B, k)
    half.add(log_w)
    full.add(2 * log_w)


def point_estimates_from(half: LogMoments, full: LogMoments) -> PointEstimates:
    """Per-point estimates (3.5), (3.6), (2.5) from the moments of log w (``half``) and 2 log w (``full``)."""
    return PointEstimates(
        log_ptilde=2 * half.log_mean(),
        log_ptilde_se=2 * half.se_of_log_mean(),
        log_p=full.log_mean(),
        log_p_se=full.se_of_log_mean(),
        ess=half.ess_fraction(),
    )


@dataclass(frozen=True)
class DataEstimates:
    """Data-set averages of the per-point estimates; SE over data points (includes the IS noise)."""

    log_ptilde: Estimate
    log_p: Estimate
    ess: Estimate
    n: int
    K: int

    def to_dict(self) -> dict:
        return {
            "K": self.K,
            "n": self.n,
            "log_ptilde": self.log_ptilde.mean,
            "log_ptilde_se": self.log_ptilde.se,
            "log_p": self.log_p.mean,
            "log_p_se": self.log_p.se,
            "ess": self.ess.mean,
            "ess_se": self.ess.se,
        }


def _mean_se(values: Tensor) -> Estimate:
    v = values.double()
    n = v.numel()
    se = float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return Estimate(float(v.mean()), se)


@torch.no_grad()
def evaluate(
    model: BiHM,
    batches: Iterable[Tensor],
    K: int,
    generator: torch.Generator | None,
    k_chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> DataEstimates:
    """Average log p̃*(x), log p(x) and ESS over a data set given as (b, D) batches, with SEs.

    The standard error is that of the mean over data points (its IS part is included, since each
    point's estimate is itself random). ``progress(n_rows)`` is called after every batch.
    """
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    parts: list[PointEstimates] = []
    ws = Workspace()  # one set of buffers for every chunk of every batch
    for xb in batches:
        xb = xb.to(device=model.device, dtype=model.dtype)
        for sub in xb.split(chunk_rows(model.sizes, model.device)):  # ≤ chunk_rows points, ≤ chunk_rows // points samples each
            parts.append(point_estimates(model, sub, K, generator, k_chunk, ws))
        if progress is not None:
            progress(xb.shape[0])
    return data_estimates(parts, K)


def data_estimates(parts: list[PointEstimates], K: int) -> DataEstimates:
    """Data-set averages (and their SEs over points) of per-point estimates given in batches."""
    if not parts:
        raise ValueError("no data to evaluate")
    cat = {f: torch.cat([getattr(p, f) for p in parts]) for f in ("log_ptilde", "log_p", "ess")}
    n = cat["log_ptilde"].numel()
    return DataEstimates(_mean_se(cat["log_ptilde"]), _mean_se(cat["log_p"]), _mean_se(cat["ess"]), n, K)


@torch.no_grad()
def log_z2_terms(
    model: BiHM, n: int, n_inner: int, generator: torch.Generator | None, ws: Workspace | None = None
) -> Tensor:
    """n outer terms of the Z² estimator (3.11) in log space, (n,).

    Draws (x, h) ~ p(x, h) ancestrally and ``n_inner`` draws h' ~ q(h | x); each term is
    log mean_{h'} sqrt( p(x, h') q(h | x) / (p(x, h) q(h' | x)) ). Computed in chunks of at most
    :func:`chunk_rows` rows.
    """
    ws = ws or Workspace()
    per = max(1, chunk_rows(model.sizes, model.device) // n_inner)
    with ws.fixed_weights():
        return torch.cat([z2_terms_pass(model, min(per, n - s), n_inner, generator, ws=ws) for s in range(0, n, per)])


@torch.no_grad()
def estimate_log_z2(
    model: BiHM,
    n_samples: int,
    generator: torch.Generator | None,
    n_inner: int = 1,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> Estimate:
    """2 log Z = log Z² from the unbiased Z² estimator (3.11), streaming in chunks of outer samples.

    ``n_samples`` outer draws (x, h) ~ p with ``n_inner`` inner draws each (n_inner = 1 converges
    fastest per unit of compute). Z² itself is unbiased; its log is biased low by Jensen, which the
    standard error (delta method, SE(Z²)/Z²) bounds.
    """
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples for 2 log Z, got {n_samples}")
    if n_inner < 1:
        raise ValueError(f"inner samples must be at least 1, got {n_inner}")
    acc = LogMoments()
    done = 0
    ws = Workspace()
    while done < n_samples:
        m = min(chunk, n_samples - done)
        acc.add(log_z2_terms(model, m, n_inner, generator, ws).double().unsqueeze(0))
        done += m
        if progress is not None:
            progress(m)
    return log_z2_estimate(acc)


def log_z2_estimate(acc: LogMoments) -> Estimate:
    """2 log Z and its delta-method SE from the moments of the log-terms of (3.11)."""
    return Estimate(float(acc.log_mean()[0]), float(acc.se_of_log_mean()[0]))


def log_p_star(log_ptilde: Estimate, log_z2: Estimate) -> Estimate:
    """log p*(x) = log p̃*(x) − 2 log Z  (3.3); the SEs add in quadrature."""
    return log_ptilde - log_z2


_LogMoments = LogMoments  # the name before it was public
