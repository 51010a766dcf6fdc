"""The plain-autograd formulations of Algorithm 1 that the benchmarks compare the engine against.

A straightforward PyTorch implementation: nn.Linear layers, the K copies of x materialised
(``repeat_interleave``), log-probabilities via binary cross-entropy with logits, the surrogate
Σ_k stopgrad(ω̃_k)(log p + log q) and ``backward()``. Two variants:

* ``plain``: the textbook way (and the way the tests cross-check the engine): draw h ~ q under
  ``no_grad``, then evaluate log q and log p with autograd on and call ``backward()``;
* ``tuned``: the q logits computed for sampling are the ones differentiated (nothing is computed
  twice) — what a careful autograd user would write.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AutogradBiHM(nn.Module):
    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__()
        L = len(sizes) - 1
        self.prior = nn.Parameter(torch.full((sizes[L],), -1.0))
        self.p = nn.ModuleList([nn.Linear(sizes[l], sizes[l - 1]) for l in range(1, L + 1)])
        self.q = nn.ModuleList([nn.Linear(sizes[l - 1], sizes[l]) for l in range(1, L + 1)])
        for lin in [*self.p, *self.q]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.constant_(lin.bias, -1.0)

    def surrogate_loss(self, x: torch.Tensor, K: int, l1: float = 1e-3, tuned: bool = True) -> torch.Tensor:
        B = x.shape[0]
        h = x.repeat_interleave(K, 0)  # (B·K, D)
        hs, log_q = [h], 0.0
        if tuned:
            for lin in self.q:
                u = lin(h)
                h = torch.bernoulli(torch.sigmoid(u.detach()))
                log_q = log_q - F.binary_cross_entropy_with_logits(u, h, reduction="none").sum(1)
                hs.append(h)
        else:
            with torch.no_grad():
                for lin in self.q:
                    h = torch.bernoulli(torch.sigmoid(lin(h)))
                    hs.append(h)
            for l, lin in enumerate(self.q, start=1):
                log_q = log_q - F.binary_cross_entropy_with_logits(lin(hs[l - 1]), hs[l], reduction="none").sum(1)
        log_p = -F.binary_cross_entropy_with_logits(self.prior.expand_as(hs[-1]), hs[-1], reduction="none").sum(1)
        for l, lin in enumerate(self.p, start=1):
            log_p = log_p - F.binary_cross_entropy_with_logits(lin(hs[l]), hs[l - 1], reduction="none").sum(1)
        log_w = (0.5 * (log_p - log_q)).view(B, K)
        omega = torch.softmax(log_w.detach(), 1).view(-1)
        objective = (omega * (log_p + log_q)).sum() / B
        penalty = sum(lin.weight.abs().sum() for lin in [*self.p, *self.q])
        self._last_bound = float(2 * (torch.logsumexp(log_w.detach(), 1) - math.log(K)).mean())
        return -objective + l1 * penalty
