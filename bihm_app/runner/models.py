"""The one way the front-ends get a model: from a run or checkpoint, or freshly initialised.

``bihm sample/inpaint/layers/logz``, the dashboard's picture screens and the Python API all call
:func:`load_model` (or :func:`fresh_model`); the store's reader below it does the checking.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bihm_app.errors import BihmError, ConfigError

__all__ = ["LoadedModel", "load_model", "fresh_model", "device_of", "dataset", "image_shape_of"]


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode with what pictures and estimates need to know: its checkpoint ``meta``
    (empty for a fresh model), the file it came from, its data set's name and picture shape."""

    model: object  # bihm_app.engine.model.BiHM (untyped: torch is imported lazily)
    meta: dict = field(default_factory=dict)
    path: Path | None = None
    data_name: str = ""
    image_shape: tuple[int, int] | None = None

    @property
    def n_layers(self) -> int:
        return int(self.model.n_layers)


def device_of(spec: str | None = "auto"):
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' -> a torch.device (a ConfigError when unavailable)."""
    from bihm_app.engine.model import resolve_device

    try:
        return resolve_device(spec or "auto")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@functools.lru_cache(maxsize=4)
def dataset(name: str):
    """A data set by name; the last few are kept (they verify their checksum on load)."""
    from bihm_app.data import load_dataset

    return load_dataset(name)


def image_shape_of(ds, dim: int) -> tuple[int, int] | None:
    """The data set's picture shape, else a square one when ``dim`` is a square, else None."""
    shape = getattr(ds, "image_shape", None) if ds is not None else None
    if shape is None:
        side = int(round(dim**0.5))
        shape = (side, side) if side * side == dim else None
    return tuple(shape) if shape else None


def _shape_for(data_name: str, dim: int) -> tuple[int, int] | None:
    try:
        ds = dataset(data_name) if data_name else None
    except BihmError:
        ds = None
    return image_shape_of(ds, dim)


_cache: dict[tuple, LoadedModel] = {}
_cache_lock = threading.Lock()


def load_model(target: str | Path, root: Path, device: str | None = "auto", which: str = "best",
               cache: bool = False, labels_ok: bool = False) -> LoadedModel:  # fmt: skip
    """A run name, run folder or checkpoint file -> :class:`LoadedModel` on ``device``.

    ``which`` picks ``best.h5`` or ``checkpoint.h5`` ("latest") inside a run folder. With ``cache``
    the model is kept by (file, mtime, device) (the dashboard reopens the same runs). A
    semi-supervised model with the label on top only loads for callers that handle labels
    (``labels_ok``: classify, eval, logz). Raises
    CheckpointError/RunError/ConfigError with one line for anything missing or damaged.
    """
    from bihm_app.store.models import load_model as read_model
    from bihm_app.store.runs import resolve_checkpoint

    dev = device_of(device)
    path = resolve_checkpoint(target, Path(root), which=which)
    key = (str(path), path.stat().st_mtime, str(dev), labels_ok)
    with _cache_lock:
        if cache and key in _cache:
            return _cache[key]
    model, meta, path = read_model(path, Path(root), dev, labels_ok=labels_ok)
    meta["_path"] = str(path)
    data_name = str(meta.get("data", {}).get("name", ""))
    loaded = LoadedModel(model, meta, Path(path), data_name, _shape_for(data_name, model.sizes[0]))
    if cache:
        with _cache_lock:
            _cache[key] = loaded
    return loaded


def fresh_model(layers: str | tuple[int, ...], data: str = "bmnist", device: str | None = "auto", seed: int = 0) -> LoadedModel:
    """A freshly initialised BiHM for ``data`` with latent ``layers`` ('200,200', a preset or sizes)."""
    from bihm_app.engine.model import BiHM, ModelConfig, parse_layers
    from bihm_app.runner.budget import check_model_fits
    from bihm_app.runner.seeds import generator

    from bihm_app.runner.configs import check_no_empty_entries

    check_no_empty_entries(layers)
    ds = dataset(data)
    try:
        sizes = parse_layers(layers) if isinstance(layers, str) else tuple(int(n) for n in layers)
        cfg = ModelConfig(ds.dim, sizes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    dev = device_of(device)
    check_model_fits(cfg, dev)  # before allocating it
    model = BiHM(cfg, generator(seed, "init")).to(dev).eval()
    return LoadedModel(model, {}, None, ds.name, image_shape_of(ds, ds.dim))
