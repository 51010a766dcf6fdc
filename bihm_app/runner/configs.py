"""The defaults of every concern, in one place, and the one way to change them.

* model: the layer sizes of a new run (:data:`LAYERS`, the thesis' 12-layer MNIST model) and of a
  freshly initialised model for pictures (:data:`FRESH_LAYERS`);
* training: :data:`TRAIN`, the engine's :class:`~bihm_app.engine.training.TrainConfig` defaults;
* sampling: ``runner/pictures.py``'s :data:`~bihm_app.runner.pictures.SAMPLING` and
  :data:`~bihm_app.runner.pictures.INPAINTING`.

``bihm train``'s options and the Python API take their defaults from here; the dashboard's
new-run form (``tui/launcher.py:NewRunSpec``, which must not import torch at start-up) is checked
against them by ``tests/runner/test_configs.py`` — only its model is smaller (200,200 for 100
epochs: a run that finishes in minutes). A change goes through :func:`train_config`, which uses
``dataclasses.replace`` so that validation always runs.
"""

from __future__ import annotations

from dataclasses import replace

from bihm_app.engine.model import parse_layers
from bihm_app.engine.training import TrainConfig
from bihm_app.errors import ConfigError

__all__ = ["TRAIN", "LAYERS", "FRESH_LAYERS", "DATA", "train_config", "layer_sizes", "check_no_empty_entries",
           "TrainConfig"]  # fmt: skip

DATA = "bmnist"
LAYERS = "paper12"
FRESH_LAYERS = "200,200"
TRAIN = TrainConfig()


def train_config(base: TrainConfig = TRAIN, **overrides) -> TrainConfig:
    """``base`` with ``overrides`` (None values are left out), validated again; a ConfigError with
    one line for a value out of range."""
    from bihm_app.runner.seeds import check_seed

    if overrides.get("seed") is not None and int(overrides["seed"]) >= 0:
        check_seed(overrides["seed"])  # a negative one gets the config's own message
    try:
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except TypeError as exc:  # an unknown field
        raise ConfigError(f"unknown training option: {exc}") from None


def check_no_empty_entries(spec) -> None:
    """A ConfigError for a layer spec with an empty entry ('5,,5', '5,', ',5'): the engine's parser
    skips them, so a typo would silently train another model."""
    if isinstance(spec, str) and "," in spec and any(part.strip() == "" for part in spec.split(",")):
        raise ConfigError(f"layers {spec!r} has an empty entry; give comma-separated positive integers (e.g. 200,200)")


def layer_sizes(spec: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """'200,200', 'paper12' or a sequence of sizes -> a tuple of sizes (a ConfigError when bad,
    an empty entry such as '5,,5' included)."""
    check_no_empty_entries(spec)
    try:
        sizes = parse_layers(spec) if isinstance(spec, str) else tuple(int(n) for n in spec)
    except (ValueError, TypeError):
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"layers {spec!r} must be comma-separated positive integers, bottom-up (e.g. 200,200), or paper12")
    return sizes
