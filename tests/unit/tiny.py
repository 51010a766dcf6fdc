"""Tiny float64 BiHMs whose every configuration can be enumerated (the exact oracles)."""

import torch

from bihm_app.engine.model import BiHM, ModelConfig, make_generator


def tiny_model(sizes=(6, 4, 3), seed=0, scale=1.0) -> BiHM:
    """A float64 BiHM with random (not uniform-looking) parameters: Glorot init plus noise."""
    m = BiHM(ModelConfig(sizes[0], tuple(sizes[1:])), make_generator(seed)).double()
    g = make_generator(seed + 1000)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m
