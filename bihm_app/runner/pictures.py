"""Pictures of a trained model as numpy arrays: samples of p*, layer-wise generation, inpainting.

Shared by the dashboard (``tui/pictures.py``), ``bihm inpaint`` and ``bihm report``. Plain functions
of (model, numbers); the models come from the store's checkpoint reader.
"""

from __future__ import annotations

import numpy as np

from bihm_app.errors import ConfigError

METHODS = ("ancestral", "gibbs", "resampled")


def image_shape_of(ds, dim: int) -> tuple[int, int] | None:
    """The data set's picture shape, else a square one when ``dim`` is a square, else None."""
    shape = getattr(ds, "image_shape", None) if ds is not None else None
    if shape is None:
        side = int(round(dim**0.5))
        shape = (side, side) if side * side == dim else None
    return tuple(shape) if shape else None


def _generator(seed: int, device="cpu"):
    from bihm_app.engine.model import make_generator

    return make_generator(int(seed), device)


def sample_pictures(model, method: str, n: int, seed: int, steps: int = 20, K: int = 10) -> np.ndarray:
    """``n`` pictures (n, D) in [0, 1]: Bernoulli means of ancestral, Gibbs (Algorithm 2) or
    importance-resampled samples."""
    from bihm_app.engine import gibbs

    gen = _generator(seed, model.device)
    if method == "ancestral":
        _, means = gibbs.sample_ancestral(model, n, gen)
    elif method == "gibbs":
        means = gibbs.run_gibbs(model, n, steps, K, gen).means
    elif method == "resampled":
        _, means = gibbs.sample_importance_resampled(model, n, K, gen)
    else:
        raise ConfigError(f"unknown sampling method {method!r} (one of {', '.join(METHODS)})")
    return means.detach().cpu().numpy()


def layer_pictures(model, layer: int, n: int, seed: int) -> np.ndarray:
    """Layer-wise generation: n pictures (n, D) below one fixed state of ``layer``."""
    from bihm_app.engine import gibbs

    if not 1 <= layer <= model.n_layers:
        raise ConfigError(f"layer {layer} does not exist: this model has latent layers 1 … {model.n_layers}")
    return gibbs.layerwise_samples(model, layer, n, _generator(seed, model.device)).means.detach().cpu().numpy()


def to_grid(rows: np.ndarray, image_shape: tuple[int, int] | None, ncol: int | None = None) -> np.ndarray:
    """Pictures (N, D) -> one grid picture (float [0, 1]) with 2 blank pixels between pictures."""
    from bihm_app.render.grid import make_grid

    return make_grid(rows, ncol=ncol, pad=2, pad_value=0.0, image_shape=image_shape)


def inpaint_panel(model, x_true, missing, image_shape, steps: int, K: int, generator, inner_K: int = 10,
                  keep_current: bool = False, record_trajectory: bool = False, progress=None):  # fmt: skip
    """Inpainting (3.4) of the rows of ``x_true`` (n, D) with the ``missing`` (D,) pixels resampled.

    Returns (picture original | masked | completion (RGB, the missing region tinted), the chain's
    result, its score against the true pixels, a function turning a (n, D) array into a tinted grid).
    """
    import torch

    from bihm_app.engine import gibbs
    from bihm_app.render.grid import make_grid, side_by_side
    from bihm_app.render.png import colorize

    known = ~missing
    x_tilde = torch.where(known.to(model.device), x_true, torch.zeros_like(x_true))
    res = gibbs.inpaint(model, x_tilde, known, steps, K, generator, inner_K=inner_K, keep_current=keep_current,
                        record_trajectory=record_trajectory, progress=progress)  # fmt: skip
    score = gibbs.inpaint_score(res.means, res.x, x_true, known)
    n, D = x_true.shape

    def grid(rows):
        rows = rows.detach().cpu().numpy() if hasattr(rows, "detach") else np.asarray(rows)
        return make_grid(rows, ncol=n, image_shape=image_shape)

    shown_masked = x_tilde.clone()
    shown_masked[:, missing.to(model.device)] = 1.0  # the hidden region as a solid patch
    cell_mask = grid(missing.float().expand(n, D)) > 0.75
    picture = side_by_side([grid(x_true), colorize(grid(shown_masked), cell_mask), colorize(grid(res.means), cell_mask)], gap=6)
    return picture, res, score, lambda rows: colorize(grid(rows), cell_mask)
