"""The plain PyTorch implementation the benchmarks compare the engine against: the obvious code a
researcher writes — nn.Linear layers, the K copies of x materialised (``repeat_interleave``),
``torch.bernoulli`` for the samples and log-probabilities via binary cross-entropy with logits.

* training (Algorithm 1): the surrogate Σ_k stopgrad(ω̃_k)(log p + log q) and ``backward()``, in two
  variants — ``plain`` (draw h ~ q under ``no_grad``, then evaluate log q and log p with autograd: the
  textbook way, and the way the tests cross-check the engine) and ``tuned`` (the q logits computed
  for sampling are the ones differentiated — what a careful autograd user would write);
* evaluation: log p̃*(x) (3.5) and log p(x) (3.6) by sampling K copies of each point from q;
* 2 log Z (3.11): ancestral (x, h) ~ p, then h' ~ q(h | x), every log-probability evaluated by the
  same ``log_p``/``log_q`` functions.
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

    @torch.no_grad()
    def copy_from(self, engine_model) -> "AutogradBiHM":
        """Take the parameters of an engine BiHM (so both compute the same quantities)."""
        self.prior.copy_(engine_model.p_prior)
        for i, lin in enumerate(self.p):
            lin.weight.copy_(engine_model.p_weights[i])
            lin.bias.copy_(engine_model.p_biases[i])
        for i, lin in enumerate(self.q):
            lin.weight.copy_(engine_model.q_weights[i])
            lin.bias.copy_(engine_model.q_biases[i])
        return self

    # -- the building blocks a researcher writes -------------------------------------------------
    def sample_q(self, x: torch.Tensor) -> list[torch.Tensor]:
        hs = [x]
        for lin in self.q:
            hs.append(torch.bernoulli(torch.sigmoid(lin(hs[-1]))))
        return hs

    def sample_p(self, n: int) -> list[torch.Tensor]:
        h = torch.bernoulli(torch.sigmoid(self.prior).expand(n, -1))
        hs = [h]
        for lin in reversed(self.p):
            h = torch.bernoulli(torch.sigmoid(lin(h)))
            hs.append(h)
        return hs[::-1]

    def log_q(self, hs: list[torch.Tensor]) -> torch.Tensor:
        out = 0.0
        for l, lin in enumerate(self.q, start=1):
            out = out - F.binary_cross_entropy_with_logits(lin(hs[l - 1]), hs[l], reduction="none").sum(1)
        return out

    def log_p(self, hs: list[torch.Tensor]) -> torch.Tensor:
        out = -F.binary_cross_entropy_with_logits(self.prior.expand_as(hs[-1]), hs[-1], reduction="none").sum(1)
        for l, lin in enumerate(self.p, start=1):
            out = out - F.binary_cross_entropy_with_logits(lin(hs[l]), hs[l - 1], reduction="none").sum(1)
        return out

    # -- training ----------------------------------------------------------------------------------
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
                hs = self.sample_q(h)
            log_q = self.log_q(hs)
        log_p = self.log_p(hs)
        log_w = (0.5 * (log_p - log_q)).view(B, K)
        omega = torch.softmax(log_w.detach(), 1).view(-1)
        objective = (omega * (log_p + log_q)).sum() / B
        penalty = sum(lin.weight.abs().sum() for lin in [*self.p, *self.q])
        self._last_bound = float(2 * (torch.logsumexp(log_w.detach(), 1) - math.log(K)).mean())
        return -objective + l1 * penalty

    # -- evaluation (3.5, 3.6) and 2 log Z (3.11) -------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, K: int, max_rows: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
        """Per point log p̃*(x) and log p(x) with K samples, a few points at a time."""
        per = max(1, max_rows // K)
        pt, lp = [], []
        for xb in x.split(per):
            hs = self.sample_q(xb.repeat_interleave(K, 0))
            log_w = (0.5 * (self.log_p(hs) - self.log_q(hs))).view(xb.shape[0], K)
            pt.append(2 * (torch.logsumexp(log_w, 1) - math.log(K)))
            lp.append(torch.logsumexp(2 * log_w, 1) - math.log(K))
        return torch.cat(pt), torch.cat(lp)

    @torch.no_grad()
    def log_z2(self, n: int, chunk: int = 10_000) -> tuple[float, float]:
        """2 log Z and its delta-method SE from n outer samples with one inner sample each."""
        terms = []
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            hs = self.sample_p(m)
            lp, lq = self.log_p(hs), self.log_q(hs)
            hs2 = self.sample_q(hs[0])
            lp2, lq2 = self.log_p(hs2), self.log_q(hs2)
            terms.append((0.5 * (lp2 + lq - lp - lq2)).double())
        t = torch.cat(terms)
        lse = torch.logsumexp(t, 0)
        ratio = torch.exp(torch.logsumexp(2 * t, 0) - 2 * lse + math.log(n))
        return float(lse - math.log(n)), float(torch.sqrt(torch.clamp(ratio - 1, min=0) / n))
