"""The picture work behind the samples, inpaint and layers screens.

Plain functions of (model, numbers) that return numpy arrays; the screens call them from thread
workers so the interface never waits on torch. Models are loaded with the store's checkpoint
reader (the dashboard does not import the CLI layer).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bihm_app.errors import ConfigError, DataError
from bihm_app.runner.pictures import METHODS, image_shape_of, layer_pictures, sample_pictures, to_grid  # noqa: F401

MASKS = ("bottom", "top", "left", "right", "centre", "random")


@dataclass
class LoadedModel:
    """A model ready for sampling, with what the pictures need to know about its data."""

    model: object  # bihm_app.engine.model.BiHM (kept untyped: torch is imported lazily)
    meta: dict
    path: Path
    data_name: str
    image_shape: tuple[int, int] | None

    @property
    def n_layers(self) -> int:
        return int(self.model.n_layers)


_cache: dict[tuple[str, float], LoadedModel] = {}
_cache_lock = threading.Lock()


def load_run_model(root: Path, run: str, which: str = "best") -> LoadedModel:
    """Load ``best.h5`` (or ``checkpoint.h5``) of a run on the CPU, cached by file and mtime."""
    from bihm_app.store.models import load_model
    from bihm_app.store.runs import resolve_checkpoint

    path = resolve_checkpoint(run, Path(root), which=which)
    key = (str(path), path.stat().st_mtime)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    model, meta, path = load_model(path, Path(root), "cpu")
    data_name = str(meta.get("data", {}).get("name", ""))
    loaded = LoadedModel(model, meta, path, data_name, _image_shape_of(data_name, model.sizes[0]))
    with _cache_lock:
        _cache[key] = loaded
    return loaded


@functools.lru_cache(maxsize=4)
def _dataset(name: str):
    """Data sets verify their checksum on load: keep the last few loaded."""
    from bihm_app.data import load_dataset

    return load_dataset(name)


def _image_shape_of(data_name: str, dim: int) -> tuple[int, int] | None:
    from bihm_app.errors import BihmError

    try:
        ds = _dataset(data_name)
    except BihmError:
        ds = None
    return image_shape_of(ds, dim)


def _generator(seed: int):
    from bihm_app.engine.model import make_generator

    return make_generator(int(seed), "cpu")


def draw_samples(lm: LoadedModel, method: str, n: int, seed: int, steps: int = 20, K: int = 10) -> np.ndarray:
    """``n`` pictures (n, D) in [0, 1]: Bernoulli means of ancestral, Gibbs (Algorithm 2) or
    importance-resampled samples."""
    return sample_pictures(lm.model, method, n, seed, steps, K)


def layer_samples(lm: LoadedModel, layer: int, n: int, seed: int) -> np.ndarray:
    """Layer-wise generation: n pictures (n, D) below one fixed state of ``layer``."""
    return layer_pictures(lm.model, layer, n, seed)


def make_mask(kind: str, dim: int, image_shape: tuple[int, int] | None, seed: int = 0) -> np.ndarray:
    """Known-pixel mask (D,) bool: True where the image is kept. ``kind`` names the *missing* part
    (the engine's masks; ``random`` hides half of the pixels)."""
    from bihm_app.engine.masks import mask_from_spec

    if kind not in MASKS:
        raise ConfigError(f"unknown mask {kind!r} (one of {', '.join(MASKS)})")
    try:
        missing = mask_from_spec("random:0.5" if kind == "random" else kind, dim, image_shape, seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ~missing.numpy()


def test_image(data_name: str, index: int) -> np.ndarray:
    """Row ``index`` of the data set's test split as float (D,)."""
    ds = _dataset(data_name)
    split = "test" if "test" in ds.split_names else ds.split_names[-1]
    x = ds.get(split)
    if not 0 <= index < len(x):
        raise DataError(f"test image {index} does not exist ({data_name} {split} has {len(x)} rows)")
    return np.asarray(x[index], dtype=np.float64)


def inpaint_frames(
    lm: LoadedModel, x_true: np.ndarray, known: np.ndarray, chains: int, steps: int, K: int, seed: int,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Inpainting chains (3.4) one sweep at a time: yields (sweep, means (chains, D)), sweep 0 first."""
    import torch

    from bihm_app.engine import gibbs

    gen = _generator(seed)
    x = torch.as_tensor(np.where(known, x_true, 0.0), dtype=torch.float32).expand(chains, -1).contiguous()
    k = torch.as_tensor(known, dtype=torch.bool)
    res = gibbs.inpaint(lm.model, x, k, 0, K, gen)
    yield 0, res.means.detach().cpu().numpy()
    clamp = gibbs.Clamp(x, k)
    state = res.state
    for t in range(1, steps + 1):
        if cancelled():
            return
        res = gibbs.run_chains(lm.model, state, 1, K, gen, clamp=clamp)
        state = res.state
        yield t, res.means.detach().cpu().numpy()
