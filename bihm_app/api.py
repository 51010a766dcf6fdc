"""The Python API: train, load, evaluate and sample Bidirectional Helmholtz Machines in a script.

    import bihm_app as bihm

    model = bihm.train(data="adult", layers=(100, 70, 50, 25), epochs=5)   # a run folder, trained
    model = bihm.load("adult-100-70-50-25")            # a run name, run folder or .h5 file
    est = bihm.evaluate(model, "test", K=1000)         # or an (N, D) 0/1 array (bihm.dataset)
    print(est.log_ptilde, est.log_p, est.ess)          # each mean ± se
    pics = bihm.sample(model, 16, method="gibbs")      # pics.means: (16, D) Bernoulli means
    done = bihm.inpaint(model, x, mask="bottom")       # completions of the rows of x

The same use-case layer (``bihm_app.runner``) serves the ``bihm`` command and the dashboard, so
the defaults and names are the same everywhere (``runner/configs.py``, ``runner/pictures.py``).
Every function accepts a :class:`Model` (what :func:`train` and :func:`load` return) or the
engine's :class:`~bihm_app.engine.model.BiHM` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bihm_app.errors import ConfigError
from bihm_app.runner.configs import DATA, LAYERS, TRAIN, layer_sizes, train_config
from bihm_app.runner.models import LoadedModel as Model
from bihm_app.runner.pictures import INPAINTING, SAMPLING, Pictures

__all__ = ["Model", "Inpainting", "train", "load", "dataset", "evaluate", "sample", "inpaint", "log_z2"]


def _runs(runs_dir) -> Path:
    from bihm_app.store.runs import runs_root

    return runs_root(Path(runs_dir) if runs_dir is not None else None)


def _model_of(model):
    """(BiHM, LoadedModel or None) of a Model, a BiHM or a run name/path."""
    if isinstance(model, Model):
        return model.model, model
    if isinstance(model, (str, Path)):
        lm = load(model)
        return lm.model, lm
    return model, None


def train(data: str = DATA, layers=LAYERS, *, epochs: int = TRAIN.epochs, name: str | None = None,
          runs_dir: str | Path | None = None, device: str = "auto", **options) -> Model:  # fmt: skip
    """Train a BiHM (Algorithm 1) in a new run folder and return its best model.

    ``options`` are fields of :class:`~bihm_app.engine.training.TrainConfig` (``K``, ``batch_size``,
    ``lr``, ``patience``, ``seed``, …), checked like ``bihm train``'s options. The run folder
    (``$BIHM_HOME/runs/<name>`` or ``runs_dir``) holds the checkpoints and metrics, as for the
    command line.
    """
    from bihm_app.runner.train_loop import Reporter, RunSpec, start_run

    cfg = train_config(TRAIN, epochs=epochs, **options)
    spec = RunSpec(data=data, layers=layer_sizes(layers), train=cfg, device=device, name=name)
    run, _ = start_run(_runs(runs_dir), spec, Reporter())
    return load(run.path, device=device, which="best" if run.best_path.exists() else "latest")


def load(path_or_run: str | Path, *, runs_dir: str | Path | None = None, device: str = "auto", which: str = "best") -> Model:
    """A run name, run folder or checkpoint file -> :class:`Model` (``.model`` is the BiHM, in eval mode)."""
    from bihm_app.runner.models import load_model

    return load_model(path_or_run, _runs(runs_dir), device, which)


def dataset(name: str = DATA):
    """A data set by name (``bihm data list``): ``.get("train" | "valid" | "test")`` -> (N, D) 0/1 array."""
    from bihm_app.runner.models import dataset as load_dataset

    return load_dataset(name)


def _rows(model, lm, x) -> np.ndarray:
    """An (N, D) array of 0/1 values, or a split name of the model's data set."""
    if isinstance(x, str):
        from bihm_app.runner.models import dataset

        if lm is None or not lm.data_name:
            raise ConfigError(f"split {x!r}: this model has no data set; pass an (N, D) array")
        ds = dataset(lm.data_name)
        if x not in ds.split_names:
            raise ConfigError(f"data set {ds.name} has no split {x!r} (splits: {', '.join(ds.split_names)})")
        x = ds.get(x)
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != model.sizes[0]:
        raise ConfigError(f"data of shape {x.shape} does not fit a model with {model.sizes[0]} visible units")
    if not np.isin(x, (0.0, 1.0)).all():
        raise ConfigError("a BiHM models binary data: every value must be 0 or 1")
    return x


def evaluate(model, x, K: int = 1000, *, batch: int = 100, seed: int = 0):
    """log p̃*(x), log p(x) and the ESS averaged over the rows of ``x`` (an (N, D) 0/1 array or a split
    name such as ``"test"``), each an ``Estimate`` (``.mean``, ``.se``); importance sampling with K
    samples per point (3.5). Returns the engine's ``DataEstimates``."""
    import torch

    from bihm_app.engine.estimators import evaluate as estimate
    from bihm_app.runner.seeds import generator

    net, lm = _model_of(model)
    rows = torch.as_tensor(_rows(net, lm, x))
    if K < 1 or batch < 1:
        raise ConfigError("K and batch must be at least 1")
    return estimate(net, rows.split(batch), K, generator(seed, "eval", net.device, index=K))


def log_z2(model, samples: int = 100_000, *, inner: int = 1, seed: int = 0):
    """2 log Z (3.11) with its standard error (``.mean``, ``.se``): log p*(x) = log p̃*(x) − 2 log Z."""
    from bihm_app.runner.evaluation import estimate_z2

    return estimate_z2(_model_of(model)[0], samples, inner, seed)


def sample(model, n: int = 64, method: str = SAMPLING.method, **options) -> Pictures:
    """``n`` samples: ``method`` gibbs (Algorithm 2), resample or ancestral; ``options`` are fields of
    :class:`~bihm_app.runner.pictures.SamplingConfig` (``steps``, ``K``, ``inner_K``, ``keep_current``,
    ``seed``). Returns ``Pictures`` with ``x`` (n, D) draws and ``means`` (n, D)."""
    from bihm_app.runner.pictures import sample_pictures

    return sample_pictures(_model_of(model)[0], n, replace(SAMPLING, method=method, **options))


@dataclass(frozen=True)
class Inpainting:
    """Completions ``x`` (n, D) and their means ``means`` (n, D), the ``missing`` mask (D,) bool, and per
    image the log-likelihood of the true missing pixels and the fraction of them got wrong."""

    x: np.ndarray
    means: np.ndarray
    missing: np.ndarray
    log_lik: np.ndarray
    error_rate: np.ndarray


def inpaint(model, x, mask: str = "bottom", **options) -> Inpainting:
    """Complete the ``mask`` part (bottom, top, left, right, centre, random, random:F or a PNG file) of
    the rows of ``x`` (an (n, D) 0/1 array) with the Gibbs sampler, known pixels clamped (3.4).
    ``options``: fields of ``SamplingConfig`` (default 100 sweeps, K = 100)."""
    from bihm_app.runner.pictures import inpaint_panel, missing_mask

    net, lm = _model_of(model)
    rows = _rows(net, lm, x)
    cfg = replace(INPAINTING, **options)
    shape = lm.image_shape if lm is not None else None
    missing = missing_mask(mask, net.sizes[0], shape, cfg.seed)
    _, res, score, _ = inpaint_panel(net, rows, missing, shape, cfg)
    arr = lambda t: t.detach().cpu().numpy()  # noqa: E731
    return Inpainting(arr(res.x), arr(res.means), missing, arr(score.log_lik), arr(score.error_rate))
