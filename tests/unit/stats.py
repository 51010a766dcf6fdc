"""The statistics of the engine's exact tests: thresholds with a stated false-alarm rate, a Bonferroni
correction when many points are compared, Pearson's χ² of i.i.d. draws against an exact law, and the
power of that χ² against a wrong law known exactly (the negative controls assert it before sampling).

Conventions: ``ALPHA`` is the false-alarm rate of one test (a correct engine fails it once in 10⁴ runs,
whatever the seed); ``BETA`` the rate at which a negative control may miss the error it plants.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

ALPHA = 1e-4  # false alarms per test
BETA = 1e-4  # misses per negative control

_N = NormalDist()


def z_two_sided(alpha: float = ALPHA, m: int = 1) -> float:
    """|z| exceeded with probability alpha by the largest of m standard normal comparisons
    (Bonferroni: each at alpha / m, two-sided). z(1e-4, 1) = 3.89, z(1e-4, 48) = 4.76."""
    return _N.inv_cdf(1 - alpha / (2 * m))


def z_one_sided(alpha: float = ALPHA, m: int = 1) -> float:
    """z exceeded with probability alpha by the largest of m one-sided standard normal comparisons."""
    return _N.inv_cdf(1 - alpha / m)


def chi2_threshold(df: int, alpha: float = ALPHA) -> float:
    """The (1 − alpha) quantile of χ²(df) (Wilson–Hilferty; within 1 % of exact for df ≥ 3)."""
    z = z_one_sided(alpha)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _cells(probs: torch.Tensor, n: int, min_expected: float) -> torch.Tensor:
    """A cell id per state: states whose expected count n·p is below ``min_expected`` are pooled
    (smallest first) into one cell until that cell's expectation reaches it (χ²'s approximation)."""
    p = probs.detach().double().cpu()
    order = torch.argsort(p)
    cell = torch.arange(p.numel(), device=p.device)
    pooled, acc = [], 0.0
    for i in order.tolist():
        if n * float(p[i]) >= min_expected and (not pooled or acc >= min_expected):
            break
        pooled.append(i)
        acc += n * float(p[i])
    if len(pooled) > 1:
        cell[pooled] = pooled[0]
    return torch.unique(cell, return_inverse=True)[1]


def _pooled(p: torch.Tensor, n: int, min_expected: float, *values: torch.Tensor) -> tuple[list[torch.Tensor], int]:
    """Sum each of ``values`` (S,) over the cells that pool the states of positive probability ``p``
    (expected count ≥ ``min_expected`` in n draws); returns the pooled sums and the χ² df."""
    keep = p > 0
    cell = _cells(p[keep], n, min_expected)
    n_cells = int(cell.max()) + 1
    pooled = [torch.zeros(n_cells, dtype=torch.float64, device=p.device).index_add_(0, cell, v[keep]) for v in values]
    return pooled, n_cells - 1


def pearson_chi2(index: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> tuple[float, int]:
    """Pearson's χ² of i.i.d. draws (state indices, (n,)) against the exact law ``probs`` (S,), with
    rare states pooled (expected count ≥ ``min_expected`` per cell). Returns (statistic, df); a draw
    of a state the law gives probability 0 makes the statistic infinite."""
    n = index.numel()
    p = probs.detach().double().cpu()
    counts = torch.bincount(index.cpu(), minlength=p.numel()).double()
    if bool((counts[p == 0] > 0).any()):
        return math.inf, 1
    (obs, pc), df = _pooled(p, n, min_expected, counts, p)
    return float(((obs - n * pc) ** 2 / (n * pc)).sum()), df


def chi2_noncentrality(law: torch.Tensor, probs: torch.Tensor, n: int, min_expected: float = 5.0) -> tuple[float, int]:
    """(λ, df) of the χ² of n draws from ``law`` against ``probs`` (same pooled cells as
    :func:`pearson_chi2`): the statistic is ≈ noncentral χ²(df, λ), λ = n Σ_c (law_c − p_c)² / p_c
    (infinite if ``law`` puts mass where ``probs`` has none)."""
    p, w = probs.detach().double().cpu(), law.detach().double().cpu()
    if float(w[p == 0].sum()) > 0:
        return math.inf, 1
    (wc, pc), df = _pooled(p, n, min_expected, w, p)
    return float(n * ((wc - pc) ** 2 / pc).sum()), df


def chi2_detects(lam: float, df: int, alpha: float = ALPHA, beta: float = BETA, margin: float = 1.0) -> bool:
    """Whether a noncentral χ²(df, λ/margin) exceeds the alpha-threshold with probability ≥ 1 − beta
    (normal approximation: mean df + λ, variance 2(df + 2λ)). ``margin`` > 1 asks for that much more
    effect than needed (for a law known only approximately, e.g. the K → ∞ limit of a chain)."""
    lam = lam / margin
    return df + lam - z_one_sided(beta) * math.sqrt(2 * (df + 2 * lam)) > chi2_threshold(df, alpha)


def mean_interval(values: torch.Tensor, probs: torch.Tensor, n: int, a: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the mean of n i.i.d. draws of a nonnegative variable lies with probability ≥ 1 − a,
    whatever its tails: ``values`` (B, S) ≥ 0 taken with probabilities ``probs`` (B, S) (one variable
    per row). Returns (lo, hi), each (B,).

    Lower end: Bernstein's inequality with the range below the mean, μ (the variable is ≥ 0), at a/2.
    Upper end: the values above c, where P(value > c) ≤ a / (4n), are reached by any of the n draws with
    probability ≤ a/4; below c, Bernstein with range c at a/4. No normal approximation: this holds for
    the heavy-tailed importance weights of a tiny model at small K as well."""
    v, p = values.double(), probs.double()
    mu = (p * v).sum(1)
    var = (p * (v - mu.unsqueeze(1)) ** 2).sum(1)
    L = math.log(2 / a)
    t_lo = (2 * mu * L / 3 + torch.sqrt((2 * mu * L / 3) ** 2 + 8 * n * var * L)) / (2 * n)
    # the truncation point c: the largest values carry at most a / (4n) of the probability
    order = torch.argsort(v, dim=1, descending=True)
    vs, ps = v.gather(1, order), p.gather(1, order)
    tail = torch.cumsum(ps, 1)  # P(value ≥ vs[j])
    below = tail > a / (4 * n)  # vs[j] is reached with probability above the budget: keep it
    c = torch.where(below, vs, torch.zeros_like(vs)).max(1).values
    vc = torch.where(v <= c.unsqueeze(1), v, torch.zeros_like(v))
    mu_c = (p * vc).sum(1)
    var_c = (p * vc**2).sum(1) - mu_c**2
    L4 = math.log(4 / a)
    b = (c - mu_c).clamp(min=0)
    t_hi = (2 * b * L4 / 3 + torch.sqrt((2 * b * L4 / 3) ** 2 + 8 * n * var_c.clamp(min=0) * L4)) / (2 * n)
    return mu - t_lo, mu_c + t_hi


def t_two_sided(dof: int, alpha: float = ALPHA, m: int = 1) -> float:
    """|t| exceeded with probability alpha by the largest of m Student-t(dof) comparisons (Bonferroni),
    by the Cornish–Fisher expansion of the t quantile in 1/dof (within 0.5 % for dof ≥ 20 at these z):
    the threshold for a mean of dof + 1 repeats against its own sample standard error."""
    z = z_two_sided(alpha, m)
    v = float(dof)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )
