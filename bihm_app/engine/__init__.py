"""The pure-PyTorch engine: the model, its estimators, training (Algorithm 1) and sampling (Algorithm 2)."""

from bihm_app.engine.estimators import DataEstimates, Estimate, estimate_log_z2, evaluate
from bihm_app.engine.gibbs import (
    Draws,
    GibbsConfig,
    GibbsResult,
    GibbsState,
    inpaint,
    layerwise_samples,
    run_chains,
    run_gibbs,
    sample_ancestral,
    sample_importance_resampled,
)
from bihm_app.engine.masks import mask_from_spec
from bihm_app.engine.model import BiHM, ModelConfig, make_generator, parse_layers, resolve_device
from bihm_app.engine.training import Trainer, TrainConfig

__all__ = [
    "BiHM", "ModelConfig", "make_generator", "resolve_device", "parse_layers", "Trainer", "TrainConfig", "Estimate",
    "DataEstimates", "evaluate", "estimate_log_z2", "GibbsConfig", "GibbsState", "GibbsResult", "Draws", "run_gibbs",
    "run_chains", "inpaint", "sample_ancestral", "sample_importance_resampled", "layerwise_samples", "mask_from_spec",
]  # fmt: skip
