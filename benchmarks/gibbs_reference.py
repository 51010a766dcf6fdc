"""The Gibbs sampler (Algorithm 2) exactly as the engine ran it before the performance work
(bihm-app at commit c47d223): the reference the benchmark's Gibbs ratio is measured against.

A frozen copy, kept independent of the engine (the model's sampling and log-probability methods it
used are copied here too), so later engine changes cannot move the reference. Only the path
``run_gibbs(model, n_chains, steps, K, generator, inner_K)`` with fresh proposals is kept.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _blp(v: Tensor, logits: Tensor) -> Tensor:
    return (v * logits - F.softplus(logits)).sum(-1)


def _bsample(logits: Tensor, generator) -> Tensor:
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return (u < torch.sigmoid(logits)).to(logits.dtype)


def _p_logits(m, l: int, h: Tensor) -> Tensor:
    return torch.addmm(m.p_biases[l - 1], h.reshape(-1, h.shape[-1]), m.p_weights[l - 1].t()).reshape(*h.shape[:-1], -1)


def _q_logits(m, l: int, h: Tensor) -> Tensor:
    return torch.addmm(m.q_biases[l - 1], h.reshape(-1, h.shape[-1]), m.q_weights[l - 1].t()).reshape(*h.shape[:-1], -1)


def _sample_q(m, x: Tensor, K: int, generator):
    B = x.shape[0]
    u1 = _q_logits(m, 1, x).unsqueeze(1)
    h = _bsample(u1.expand(B, K, u1.shape[-1]), generator)
    hs = [x, h]
    log_q = _blp(h, u1)
    for l in range(2, m.n_layers + 1):
        u = _q_logits(m, l, h)
        h = _bsample(u, generator)
        hs.append(h)
        log_q = log_q + _blp(h, u)
    return hs, log_q


def _log_p(m, hs: list[Tensor]) -> Tensor:
    L = m.n_layers
    out = _blp(hs[L], m.p_prior)
    for l in range(1, L + 1):
        a = _p_logits(m, l, hs[l])
        target = hs[0].unsqueeze(1) if l == 1 and hs[0].dim() == hs[1].dim() - 1 else hs[l - 1]
        out = out + _blp(target, a)
    return out


def _sample_p(m, n: int, generator) -> list[Tensor]:
    h = _bsample(m.p_prior.expand(n, -1), generator)
    hs = [h]
    for l in range(m.n_layers, 0, -1):
        h = _bsample(_p_logits(m, l, h), generator)
        hs.append(h)
    return hs[::-1]


def _pick(log_w: Tensor, generator) -> Tensor:
    u = torch.rand(log_w.shape, generator=generator, device=log_w.device, dtype=log_w.dtype)
    tiny = torch.finfo(log_w.dtype).tiny
    e = (-torch.log(u.clamp(min=tiny))).clamp(min=tiny)
    return torch.argmax(log_w - torch.log(e), dim=1)


def _gather(cand: Tensor, idx: Tensor) -> Tensor:
    return cand[torch.arange(cand.shape[0], device=cand.device), idx]


def _p_layer(m, hs, l):
    if l == m.n_layers:
        return m.p_prior.expand(hs[l].shape[0], -1)
    return _p_logits(m, l + 1, hs[l + 1])


def _latent_target(m, hs, l, cand):
    L = m.n_layers
    below = hs[l - 1].unsqueeze(1)
    out = _blp(cand, _p_layer(m, hs, l).unsqueeze(1)) + _blp(cand, _q_logits(m, l, hs[l - 1]).unsqueeze(1))
    out = out + _blp(below, _p_logits(m, l, cand))
    if l < L:
        out = out + _blp(hs[l + 1].unsqueeze(1), _q_logits(m, l + 1, cand))
    return 0.5 * out


def _resample_latent(m, hs, l, K, generator):
    B = hs[0].shape[0]
    a_p = _p_layer(m, hs, l).unsqueeze(1)
    a_q = _q_logits(m, l, hs[l - 1]).unsqueeze(1)
    use_p = torch.rand((B, K, 1), generator=generator, device=a_p.device, dtype=a_p.dtype) < 0.5
    cand = _bsample(torch.where(use_p, a_p, a_q), generator)
    log_mix = torch.logaddexp(_blp(cand, a_p), _blp(cand, a_q)) - math.log(2.0)
    log_w = _latent_target(m, hs, l, cand) - log_mix
    return _gather(cand, _pick(log_w, generator))


def _log_sqrt_ptilde(m, x, inner_K, generator, max_rows=65536):
    rows = max(1, max_rows // max(1, inner_K))
    parts = []
    for start in range(0, x.shape[0], rows):
        hs, lq = _sample_q(m, x[start : start + rows], inner_K, generator)
        parts.append(torch.logsumexp(0.5 * (_log_p(m, hs) - lq), 1) - math.log(inner_K))
    return torch.cat(parts)


def _resample_visible(m, hs, K, generator, inner_K):
    x, h1 = hs[0], hs[1]
    B, D = x.shape
    a = _p_logits(m, 1, h1).unsqueeze(1)
    cand = _bsample(a.expand(B, K, D), generator)
    log_sqrt_pt = _log_sqrt_ptilde(m, cand.reshape(-1, D), inner_K, generator).view(B, K)
    log_q_h1 = _blp(h1.unsqueeze(1), _q_logits(m, 1, cand))
    log_p_x = _blp(cand, a)
    idx = _pick(log_sqrt_pt + 0.5 * (log_q_h1 - log_p_x), generator)
    return _gather(cand, idx)


@torch.no_grad()
def gibbs_sweep(m, hs: list[Tensor], K: int, generator, inner_K: int = 10) -> list[Tensor]:
    """One sweep of Algorithm 2 (odd latent layers, then x and the even layers), fresh proposals."""
    hs = list(hs)
    L = m.n_layers
    for l in range(1, L + 1, 2):
        hs[l] = _resample_latent(m, hs, l, K, generator)
    hs[0] = _resample_visible(m, hs, K, generator, inner_K)
    for l in range(2, L + 1, 2):
        hs[l] = _resample_latent(m, hs, l, K, generator)
    return hs


@torch.no_grad()
def start_chains(m, n_chains: int, generator) -> list[Tensor]:
    """Chains start from ancestral samples of p, as run_gibbs does."""
    return _sample_p(m, n_chains, generator)
