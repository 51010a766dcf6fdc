"""Exact quantities of tiny BiHMs by enumerating every configuration (the test oracles).

For a model with D visible and n_1 … n_L latent units the joint tables have
2^D · 2^{n_1} ⋯ 2^{n_L} entries, so keep the total number of units around 16. Computed in the
model's dtype (use float64).

* ``log p(x, h)``, ``log q(h | x)``            tables over (x, h_1, …, h_L)
* ``log p(x)``   = logsumexp_h log p(x, h)
* ``log p̃*(x)`` = 2 logsumexp_h ½[log p(x, h) + log q(h | x)]     (3.2)
* ``2 log Z``    = logsumexp_x log p̃*(x)                            (Σ_x p̃*(x) = Z²)
* ``log p*(x, h) = ½[log p(x, h) + log q(h | x) + log p*(x)] − log Z``  the Gibbs target
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bihm_app.engine.model import BiHM


def all_states(n: int, dtype=torch.float64, device=None) -> Tensor:
    """Every binary vector of length n, (2^n, n), in the binary-counting order of :func:`state_index`."""
    idx = torch.arange(2**n, device=device)
    bits = (idx.unsqueeze(1) >> torch.arange(n - 1, -1, -1, device=device)) & 1
    return bits.to(dtype)


def state_index(v: Tensor) -> Tensor:
    """Index of binary vectors (…, n) in :func:`all_states` order, (…)."""
    n = v.shape[-1]
    w = 2 ** torch.arange(n - 1, -1, -1, device=v.device)
    return (v.long() * w).sum(-1)


def _cond_table(logits: Tensor, targets: Tensor) -> Tensor:
    """log B(target_j | σ(logits_i)) for all pairs: logits (I, n), targets (J, n) -> (I, J)."""
    a = logits.unsqueeze(1)
    t = targets.unsqueeze(0)
    return (t * a - torch.nn.functional.softplus(a)).sum(-1)


@dataclass
class ExactTables:
    """log p(x, h) and log q(h | x) over all configurations, shape (2^D, 2^{n_1}, …, 2^{n_L})."""

    log_pxh: Tensor
    log_qhx: Tensor

    @property
    def log_px(self) -> Tensor:
        """log p(x), (2^D,)."""
        return torch.logsumexp(self.log_pxh.flatten(1), 1)

    @property
    def log_ptilde(self) -> Tensor:
        """log p̃*(x) (3.2), (2^D,)."""
        return 2 * torch.logsumexp(0.5 * (self.log_pxh + self.log_qhx).flatten(1), 1)

    @property
    def log_z2(self) -> Tensor:
        """2 log Z = log Σ_x p̃*(x), scalar."""
        return torch.logsumexp(self.log_ptilde, 0)

    @property
    def log_pstar(self) -> Tensor:
        """log p*(x) = log p̃*(x) − 2 log Z (3.3), (2^D,)."""
        return self.log_ptilde - self.log_z2

    @property
    def log_pstar_joint(self) -> Tensor:
        """log p*(x, h) = ½[log p(x,h) + log q(h|x) + log p*(x)] − log Z, same shape as the tables."""
        shape = (-1,) + (1,) * (self.log_pxh.dim() - 1)
        return 0.5 * (self.log_pxh + self.log_qhx + self.log_pstar.view(shape)) - 0.5 * self.log_z2


def _log_tables(model: BiHM) -> tuple[Tensor, Tensor]:
    """log p(x, h) and log q(h | x) over every (x, h_1, …, h_L) (differentiable)."""
    sizes = model.sizes
    total = sum(sizes)
    if total > 22:
        raise ValueError(f"exact enumeration needs a tiny model (≤ 22 units in all), this one has {total}")
    L = model.n_layers
    states = [all_states(n, model.dtype, model.device) for n in sizes]
    ndim = L + 1

    def place(t: Tensor, axes: tuple[int, int]) -> Tensor:
        shape = [1] * ndim
        shape[axes[0]], shape[axes[1]] = t.shape
        return t.reshape(shape)

    prior = (states[L] * model.p_prior - torch.nn.functional.softplus(model.p_prior)).sum(-1)
    shape = [1] * ndim
    shape[L] = prior.shape[0]
    log_p = prior.reshape(shape)
    log_q = torch.zeros((), dtype=model.dtype, device=model.device)
    for l in range(1, L + 1):
        # p(h_{l-1} | h_l) and q(h_l | h_{l-1}) as tables over (h_{l-1}, h_l), placed on axes (l-1, l)
        log_p = log_p + place(_cond_table(model.p_logits(l, states[l]), states[l - 1]).t(), (l - 1, l))
        log_q = log_q + place(_cond_table(model.q_logits(l, states[l - 1]), states[l]), (l - 1, l))
    full = [2**n for n in sizes]
    return log_p.expand(full), log_q.expand(full)


def exact_tables(model: BiHM) -> ExactTables:
    """Enumerate log p(x, h) and log q(h | x) for every (x, h_1, …, h_L)."""
    with torch.no_grad():
        log_p, log_q = _log_tables(model)
        return ExactTables(log_p.clone(), log_q.clone())


def exact_log_ptilde_fn(model: BiHM, x_index: Tensor) -> Tensor:
    """Differentiable exact log p̃*(x) for the given visible configurations (indices into
    ``all_states(D)``), (n,). Used to check that Algorithm 1's gradient estimate converges to the
    exact gradient of log p̃*(x)."""
    log_p, log_q = _log_tables(model)
    table = (log_p + log_q)[x_index]  # (n, 2^{n_1}, …)
    return 2 * torch.logsumexp(0.5 * table.flatten(1), 1)
