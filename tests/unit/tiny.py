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
