"""Tiny float64 BiHMs whose every configuration can be enumerated (the exact oracles)."""

import contextlib

import torch

from bihm_app.engine.model import BiHM, ModelConfig, bernoulli_log_prob, make_generator


def tiny_model(sizes=(6, 4, 3), seed=0, scale=1.0) -> BiHM:
    """A float64 BiHM with random (not uniform-looking) parameters: Glorot init plus noise."""
    m = BiHM(ModelConfig(sizes[0], tuple(sizes[1:])), make_generator(seed)).double()
    g = make_generator(seed + 1000)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _sign_pattern(n_lo: int, n_hi: int, dtype) -> torch.Tensor:
    """A fixed ±1 matrix (n_lo, n_hi): +1 where i ≡ j (mod n_hi), else −1 (every column differs)."""
    i, j = torch.arange(n_lo).view(-1, 1), torch.arange(n_hi).view(1, -1)
    return torch.where(i % n_hi == j, 1.0, -1.0).to(dtype)


def top_factor_model(sizes=(5, 3, 2), seed=0, scale=1.0, strength=4.0) -> BiHM:
    """A tiny float64 BiHM on which leaving out the top layer's factor p(h_{L-1} | h_L) is a large
    error *by construction*, whatever the seed: :func:`tiny_model`'s random parameters, then p's top
    weights W_L get + strength·P and q's top weights U_L − strength·Pᵀ (P a fixed ±1 pattern).

    The bilinear term h_{L-1}ᵀ (W_L + U_Lᵀ) h_L of log p + log q keeps only the random part, so under
    p* the top layer is nearly independent of the layer below (the chains mix fast), while a sampler
    that drops p(h_{L-1} | h_L) draws h_L from ∝ sqrt(p(h_L) q(h_L | h_{L-1})), strongly tied to
    h_{L-1} through −strength·Pᵀ: the law of (h_{L-1}, h_L) moves far. Ancestral samples of p tie
    them through + strength·P: the chains start far from p*. The tests still compute both effects
    exactly (``exact_chains``) and assert their power before sampling.
    """
    m = tiny_model(sizes, seed, scale)
    L = len(sizes) - 1
    with torch.no_grad():
        P = _sign_pattern(sizes[L - 1], sizes[L], m.dtype).to(m.device)
        m.p_weights[L - 1].add_(strength * P)
        m.q_weights[L - 1].sub_(strength * P.t())
    return m


def far_from_p_model(sizes=(4, 3, 2), seed=0, strength=6.0, bias=3.0) -> BiHM:
    """A tiny float64 BiHM whose p*(x) is far from its p(x) *by construction*, whatever the seed:
    :func:`tiny_model`'s random parameters, then x copies h_1 under p (W_1 + strength·E, E picking
    h_1's unit i mod n_1 for x_i), q(h_1 | x) ignores x (U_1 = 0) and favours the pattern s = (+1, −1,
    +1, …) (d_1 + bias·s), while p's h_1 favours the opposite (b_1 − bias·s). As p̃*(x) = p(x)·(Σ_h
    sqrt(p(h | x) q(h | x)))², p* moves x's mass to the copies of the pattern q favours, which p
    makes rare. The tests still compute that distance exactly and assert their power on it.
    """
    m = tiny_model(sizes, seed, 1.0)
    with torch.no_grad():
        w = m.p_weights[0]
        E = torch.zeros(w.shape, dtype=w.dtype, device=w.device)
        E[torch.arange(w.shape[0]), torch.arange(w.shape[0]) % w.shape[1]] = 1.0
        w.add_(strength * E)
        m.p_biases[0].sub_(strength / 2)
        m.q_weights[0].zero_()
        s = 1.0 - 2.0 * (torch.arange(w.shape[1], device=m.device) % 2).to(m.dtype)  # (+1, −1, +1, …)
        m.q_biases[0].add_(bias * s)
        m.p_biases[1].sub_(bias * s)
    return m


@contextlib.contextmanager
def without_top_factor():
    """Run the Gibbs sampler with the authors' script's mistake: the top layer's target leaves out
    p(h_{L-1} | h_L). The chain tests must detect it (the engine itself has no switch for it).
    Yields the wrong ``latent_log_target``."""
    from bihm_app.engine import gibbs

    def top_factor(model, hs, l, cand):
        return bernoulli_log_prob(hs[l - 1].unsqueeze(1), model.p_logits(l, cand))  # (B, K)

    name = "_latent_terms" if hasattr(gibbs, "_latent_terms") else "latent_log_target"
    right = getattr(gibbs, name)
    if name == "_latent_terms":  # the sampler's shared terms: (log p up, log q up, the rest)

        def wrong(model, hs, l, cand, *rest_args):
            lp, lq, rest = right(model, hs, l, cand, *rest_args)
            return lp, lq, (rest - top_factor(model, hs, l, cand) if l == model.n_layers else rest)

    else:

        def wrong(model, hs, l, cand):
            out = right(model, hs, l, cand)
            return out - 0.5 * top_factor(model, hs, l, cand) if l == model.n_layers else out

    setattr(gibbs, name, wrong)
    try:
        yield gibbs.latent_log_target
    finally:
        setattr(gibbs, name, right)


def maybe_without_top_factor(omit: bool):
    return without_top_factor() if omit else contextlib.nullcontext()
