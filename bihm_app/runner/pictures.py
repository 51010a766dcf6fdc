"""Pictures of a model — samples of p*, layer-wise generation, inpainting — for every front-end.

``bihm sample/inpaint/layers``, the dashboard's picture screens, ``bihm report`` and the Python
API call these functions; they own the names and the defaults (:class:`SamplingConfig`), so the
front-ends only parse, call and render. Results are numpy arrays in [0, 1].

Names: methods ``gibbs`` (Algorithm 2), ``resample`` (importance resampling; ``resampled`` is
accepted as an alias) and ``ancestral`` (p alone); masks ``bottom``, ``top``, ``left``, ``right``,
``centre``, ``random`` (half of the pixels), ``random:F`` (a fraction F) or a PNG file (white =
missing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bihm_app.errors import ConfigError, DataError

__all__ = ["METHODS", "MASKS", "SamplingConfig", "SAMPLING", "INPAINTING", "Pictures", "sample_pictures",
           "chain_pictures", "layer_pictures", "check_mask", "missing_mask", "pick_rows", "test_row", "inpaint_panel", "inpaint_frames",
           "to_grid", "to_images"]  # fmt: skip

METHODS = ("ancestral", "gibbs", "resample")
_ALIASES = {"resampled": "resample"}
MASKS = ("bottom", "top", "left", "right", "centre", "random")


@dataclass(frozen=True)
class SamplingConfig:
    """How pictures are drawn; the one place for the defaults of the CLI, the dashboard and the API.

    ``steps`` Gibbs sweeps, ``K`` proposals per layer update (per sample for ``resample``),
    ``inner_K`` inner samples of the p̃*(x) estimate in the x step, ``keep_current`` iterated SIR
    (exactly p*-invariant for any K ≥ 2) instead of K fresh proposals, ``seed`` of the chains.
    Change a field with ``dataclasses.replace`` — validation runs again.
    """

    method: str = "gibbs"
    steps: int = 50
    K: int = 100
    inner_K: int = 10
    keep_current: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", _ALIASES.get(self.method, self.method))
        if self.method not in METHODS:
            raise ConfigError(f"unknown sampling method {self.method!r} (one of {', '.join(METHODS)})")
        if self.K < 1 or self.inner_K < 1 or self.steps < 0:
            raise ConfigError("K and inner K must be at least 1 and the number of sweeps at least 0")
        if self.keep_current and self.K < 2:
            raise ConfigError("keeping the current state needs K of at least 2")

    def gibbs(self):
        """The engine's :class:`~bihm_app.engine.gibbs.GibbsConfig` of these settings."""
        from bihm_app.engine.gibbs import GibbsConfig

        return GibbsConfig(K=self.K, inner_K=self.inner_K, keep_current=self.keep_current)


#: Samples of p*: 50 sweeps with K = 100 proposals.
SAMPLING = SamplingConfig()
#: Inpainting starts from q(h | x̃) and needs longer chains: 100 sweeps.
INPAINTING = replace(SAMPLING, steps=100)


@dataclass(frozen=True)
class Pictures:
    """Binary draws ``x`` (n, D), their Bernoulli means ``means`` (n, D), a one-line ``title`` and
    the latent states that came with each draw, ``states = (h_1, …, h_L)`` (each (n, n_l)): the
    chains' final states for Gibbs and inpainting, the kept proposals for resampling."""

    x: np.ndarray
    means: np.ndarray
    title: str
    states: tuple[np.ndarray, ...] = ()

    def rows(self, expected: bool = True) -> np.ndarray:
        return self.means if expected else self.x


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def sample_pictures(model, n: int, config: SamplingConfig = SAMPLING, progress: Callable[[int], None] | None = None) -> Pictures:
    """``n`` samples: Gibbs (Algorithm 2), importance-resampled p* or ancestral samples of p."""
    from bihm_app.engine import gibbs
    from bihm_app.runner.seeds import generator

    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    gen = generator(config.seed, "sampling", model.device)
    c = config
    if c.method == "gibbs":
        res = gibbs.run_gibbs(model, n, c.steps, gen, c.gibbs(), progress=progress)
        return chain_pictures(res, f"Gibbs samples of p* ({c.steps} sweeps, K = {c.K})")
    if c.method == "resample":
        d, title = gibbs.sample_importance_resampled(model, n, c.K, gen, inner_K=c.inner_K), f"importance-resampled p* ({c.K} proposals)"
    else:
        d, title = gibbs.sample_ancestral(model, n, gen), "ancestral samples of p"
    return Pictures(_np(d.x), _np(d.means), title, tuple(_np(h) for h in d.hs[1:]))


def chain_pictures(res, title: str) -> Pictures:
    """The final state of Gibbs or inpainting chains (a :class:`~bihm_app.engine.gibbs.GibbsResult`)."""
    return Pictures(_np(res.x), _np(res.means), title, tuple(_np(h) for h in res.state.hs[1:]))


def layer_pictures(model, layer: int, n: int, seed: int = 0) -> Pictures:
    """Layer-wise generation (figures 4.1–4.3): n completions below one top-down state of ``layer``."""
    from bihm_app.engine import gibbs
    from bihm_app.runner.seeds import generator

    if n < 1:
        raise ConfigError(f"the number of samples must be at least 1, got {n}")
    if not 1 <= layer <= model.n_layers:
        raise ConfigError(f"layer {layer} does not exist: this model has latent layers 1 … {model.n_layers}")
    res = gibbs.layerwise_samples(model, layer, n, generator(seed, "sampling", model.device))
    below = ["x", "x, h_1", "x, h_1 … h_{}"][min(layer, 3) - 1].replace("{}", str(layer - 1))
    title = f"{n} completions {below} ~ p(· | h_{layer}) of one top-down sample (layer {layer} of {model.n_layers})"
    return Pictures(_np(res.x), _np(res.means), title, tuple(_np(h) for h in res.hs[1:]))


def to_grid(rows: np.ndarray, image_shape: tuple[int, int] | None, ncol: int | None = None) -> np.ndarray:
    """Pictures (N, D) -> one grid picture (float [0, 1]) with 2 blank pixels between pictures."""
    from bihm_app.render.grid import make_grid

    return make_grid(rows, ncol=ncol, pad=2, pad_value=0.0, image_shape=image_shape)


def to_images(rows: np.ndarray, image_shape: tuple[int, int] | None) -> np.ndarray:
    """Pictures (N, D) -> (N, H, W) floats in [0, 1] (rows without an image shape are padded to
    near-square pictures), for a front-end that lays them out itself (the dashboard wraps them
    to its width)."""
    from bihm_app.render.grid import image_stack

    return image_stack(rows, image_shape)


# -- inpainting ------------------------------------------------------------------------------------
def check_mask(spec: str, option: str = "mask") -> str:
    """The mask ``spec`` in the form the engine reads (``random:F`` with its fraction, a named part
    in lower case) or a PNG file's path, checked before any work (the engine's
    :func:`~bihm_app.engine.masks.parse_mask_spec`): anything else is a ConfigError naming
    ``option`` and the accepted forms."""
    from bihm_app.engine.masks import MASK_FORMS, parse_mask_spec

    if Path(spec).suffix.lower() == ".png":
        return spec
    try:
        name, fraction = parse_mask_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"{option} {spec!r}: {exc} (use {MASK_FORMS} or a PNG file)") from None
    return f"random:{fraction!r}" if name == "random" else name


def missing_mask(spec: str, dim: int, image_shape: tuple[int, int] | None, seed: int = 0) -> np.ndarray:
    """The missing pixels (D,) bool: a named part (:data:`MASKS`), ``random:F`` or a PNG file
    (``spec`` as :func:`check_mask` accepts it)."""
    from bihm_app.engine.masks import mask_from_spec

    spec = check_mask(spec)
    if Path(spec).suffix.lower() == ".png":
        return _png_mask(Path(spec), dim, image_shape)
    try:
        return mask_from_spec(spec, dim, image_shape, seed).numpy()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _png_mask(p: Path, dim: int, image_shape) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not p.is_file():
        raise DataError(f"mask {p}: no such file")
    try:
        a = np.asarray(Image.open(p).convert("L"), dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"mask {p}: not a readable PNG ({exc})") from None
    want = image_shape or (1, dim)
    if a.shape != tuple(want):
        raise DataError(f"mask {p}: {a.shape[0]}x{a.shape[1]} pixels, the data needs {want[0]}x{want[1]}")
    return a.reshape(-1) > 0.5


def pick_rows(ds, split: str, index: str | list[int] | None = None, n: int = 8) -> tuple[list[int], np.ndarray]:
    """(indices, rows (n, D) float32) of a split: the given indices ('3,7' or a list), else ``n``
    spread over the split (bmnist's test split is sorted by digit)."""
    idx = pick_indices(ds, split, index, n)
    return idx, np.asarray(ds.get(split)[idx], dtype=np.float32)


def pick_indices(ds, split: str, index: str | list[int] | None = None, n: int = 8) -> list[int]:
    """The indices :func:`pick_rows` takes, checked against the split; no rows are read (a caller
    checks their number against the memory first)."""
    if split not in ds.split_names:
        raise ConfigError(f"data set {ds.name} has no split {split!r} (splits: {', '.join(ds.split_names)})")
    X = ds.get(split)
    if index is None:
        if n < 1:
            raise ConfigError(f"the number of images must be at least 1, got {n}")
        idx = np.linspace(0, len(X) - 1, n).astype(int).tolist()
    elif isinstance(index, str):
        try:
            idx = [int(s) for s in index.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"image index {index!r} is not a comma-separated list of integers") from None
    else:
        idx = [int(i) for i in index]
    bad = [i for i in idx if not 0 <= i < len(X)]
    if bad or not idx:
        raise DataError(f"image {bad[0] if bad else index} does not exist (out of range: {ds.name}/{split} "
                        f"has {len(X)} images, 0 … {len(X) - 1})")  # fmt: skip
    return idx


def test_row(data_name: str, index: int) -> np.ndarray:
    """Row ``index`` of a data set's test split (else its last split) as float (D,)."""
    from bihm_app.runner.models import dataset

    ds = dataset(data_name)
    split = "test" if "test" in ds.split_names else ds.split_names[-1]
    return pick_rows(ds, split, [index])[1][0].astype(np.float64)


def inpaint_panel(model, x_true, missing, image_shape, config: SamplingConfig = INPAINTING,
                  record_trajectory: bool = False, progress=None):  # fmt: skip
    """Inpainting (3.4) of the rows of ``x_true`` (n, D) with the ``missing`` (D,) pixels resampled.

    Returns (picture original | masked | completion (RGB, the missing region tinted), the chain's
    result, its score against the true pixels, a function turning a (n, D) array into a tinted grid).
    """
    import torch

    from bihm_app.engine import gibbs
    from bihm_app.render.grid import make_grid, side_by_side
    from bihm_app.render.png import colorize
    from bihm_app.runner.seeds import generator

    x_true = torch.as_tensor(np.asarray(x_true, dtype=np.float32), device=model.device)
    missing = torch.as_tensor(np.asarray(missing, dtype=bool))
    known = ~missing
    x_tilde = torch.where(known.to(model.device), x_true, torch.zeros_like(x_true))
    gen = generator(config.seed, "sampling", model.device)
    res = gibbs.inpaint(model, x_tilde, known, config.steps, gen, config.gibbs(),
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


def inpaint_frames(model, x_true: np.ndarray, known: np.ndarray, chains: int, config: SamplingConfig = INPAINTING,
                   cancelled: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, np.ndarray]]:  # fmt: skip
    """Inpainting chains (3.4) one sweep at a time: yields (sweep, means (chains, D)), sweep 0 first."""
    import torch

    from bihm_app.engine import gibbs
    from bihm_app.runner.seeds import generator

    gen = generator(config.seed, "sampling", model.device)
    x = torch.as_tensor(np.where(known, x_true, 0.0), dtype=torch.float32).expand(chains, -1).contiguous()
    k = torch.as_tensor(known, dtype=torch.bool)
    gcfg = config.gibbs()
    res = gibbs.inpaint(model, x, k, 0, gen, gcfg)
    yield 0, _np(res.means)
    clamp, state = gibbs.Clamp(x, k), res.state
    for t in range(1, config.steps + 1):
        if cancelled():
            return
        res = gibbs.run_chains(model, state, 1, gen, gcfg, clamp=clamp)
        state = res.state
        yield t, _np(res.means)
