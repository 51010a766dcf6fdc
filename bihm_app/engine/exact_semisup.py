"""Exact quantities of tiny semi-supervised BiHMs by enumeration (the test oracles of chapter 4).

Tables over every (x, h_1, …, h_L, y) of ``log s(x,h,y) = log √(p(x,h,y) q(h,y|x))``, built
from the model's conditionals independently of the sampling code in :mod:`engine.semisup`:

* ``log A(x)   = logsumexp_{h,y} log s``            (4.1)
* ``log B(x,y) = logsumexp_h     log s``            (4.2)
* ``log p*(y|x) = log B − log A``                   (4.3)
* ``2 log Z    = logsumexp_x 2 log A``             (Σ_x p*(x) = 1 with p*(x) = A²/Z²)
* ``log p*(x,y) = log A + log B − 2 log Z``

Keep the model tiny (≈ 16 units in all, float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from bihm_app.engine.exact import _cond_table, all_states
from bihm_app.engine.semisup import SemiBiHM


def _log_s_table(model: SemiBiHM) -> Tensor:
    """log s over (x, h_1, …, h_L, y), shape (2^D, 2^{n_1}, …, 2^{n_L}, C); differentiable."""
    sizes = model.sizes
    if sum(sizes) > 20:
        raise ValueError(f"exact enumeration needs a tiny model (≤ 20 units in all), this one has {sum(sizes)}")
    L, C = model.n_layers, model.n_classes
    states = [all_states(n, model.dtype, model.device) for n in sizes]
    ndim = L + 2  # axes: x, h_1 … h_L, y

    def place(t: Tensor, axes: tuple[int, ...]) -> Tensor:
        shape = [1] * ndim
        for ax, n in zip(axes, t.shape):
            shape[ax] = n
        return t.reshape(shape)

    log_p_below = torch.zeros((), dtype=model.dtype, device=model.device)
    log_q = torch.zeros((), dtype=model.dtype, device=model.device)
    for l in range(1, L + 1):
        # p(h_{l-1} | h_l) and q(h_l | h_{l-1}) as tables over (h_{l-1}, h_l) on axes (l-1, l)
        log_p_below = log_p_below + place(_cond_table(model.p_logits(l, states[l]), states[l - 1]).t(), (l - 1, l))
        log_q = log_q + place(_cond_table(model.q_logits(l, states[l - 1]), states[l]), (l - 1, l))
    if model.top:
        a = model.top_logits()  # (C, n_L)
        log_ph_y = _cond_table(a, states[L]).t()  # (2^{n_L}, C): log p(h_L | y)
        log_py = torch.log_softmax(model.y_prior, 0)
        log_qy = torch.log_softmax(states[L] @ model.y_q_weights.t() + model.y_q_biases, -1)  # (2^{n_L}, C)
        log_p = log_p_below + place(log_ph_y + log_py, (L, L + 1))
        return 0.5 * (log_p + log_q + place(log_qy, (L, L + 1)))
    prior = (states[L] * model.p_prior - F.softplus(model.p_prior)).sum(-1)  # (2^{n_L},)
    log_p = log_p_below + place(prior, (L,))
    zx = states[0] @ model.y_q_weights_x.t() if model.reads_x else states[0].new_zeros(len(states[0]), model.n_classes)
    zh = states[1] @ model.y_q_weights.t() + model.y_q_biases  # (2^{n_1}, C)
    log_qy = torch.log_softmax(zx.unsqueeze(1) + zh.unsqueeze(0), -1)  # (2^D, 2^{n_1}, C)
    return place(log_qy, (0, 1, L + 1)) + 0.5 * (log_p + log_q)


@dataclass
class ExactSemi:
    """Exact A, B, Z and the conditionals of a tiny semi-supervised BiHM."""

    log_a: Tensor  # (2^D,)
    log_b: Tensor  # (2^D, C)

    @property
    def log_py_given_x(self) -> Tensor:
        """log p*(y | x) = log B − log A (4.3), (2^D, C)."""
        return self.log_b - self.log_a.unsqueeze(1)

    @property
    def log_z2(self) -> Tensor:
        """2 log Z = log Σ_x A(x)², scalar."""
        return torch.logsumexp(2 * self.log_a, 0)

    @property
    def log_pstar_x(self) -> Tensor:
        """log p*(x) = 2 log A − 2 log Z (4.1), (2^D,)."""
        return 2 * self.log_a - self.log_z2

    @property
    def log_pstar_xy(self) -> Tensor:
        """log p*(x, y) = log A + log B − 2 log Z (4.2), (2^D, C)."""
        return self.log_a.unsqueeze(1) + self.log_b - self.log_z2


def _reduce(table: Tensor) -> tuple[Tensor, Tensor]:
    """(log A (2^D,), log B (2^D, C)) from a log s table."""
    D = table.shape[0]
    C = table.shape[-1]
    log_b = torch.logsumexp(table.reshape(D, -1, C), 1)
    return torch.logsumexp(log_b, 1), log_b


def exact_semisup(model: SemiBiHM) -> ExactSemi:
    """Enumerate A(x) and B(x, y) for every visible configuration and class."""
    with torch.no_grad():
        log_a, log_b = _reduce(_log_s_table(model))
    return ExactSemi(log_a.clone(), log_b.clone())


def exact_objective_fn(model: SemiBiHM, x_index: Tensor, y: Tensor, labelled: Tensor, gamma: float) -> Tensor:
    """Differentiable exact Σ_b objective_b: log B(x,y) − γ log A(x) where labelled, 2 log A(x)
    elsewhere; ``x_index`` (B,) indexes ``all_states(D)``. The reference for gradient tests."""
    log_a, log_b = _reduce(_log_s_table(model))
    la = log_a[x_index]
    lb = log_b[x_index, y.clamp(0, model.n_classes - 1)]
    return torch.where(labelled, lb - gamma * la, 2 * la).sum()
