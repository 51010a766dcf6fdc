"""One source of defaults and names: the front-ends' options are checked against the configs."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from bihm_app.errors import ConfigError
from bihm_app.runner import configs
from bihm_app.runner.pictures import INPAINTING, SAMPLING, SamplingConfig


def _defaults(fn) -> dict:
    """{parameter name: default} of a Typer command function."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()}


# CLI parameter -> TrainConfig field
TRAIN_OPTIONS = {"method": "method", "k": "K", "batch": "batch_size", "lr": "lr", "l1": "l1", "l1_per": "l1_per",
                 "baseline": "baseline", "valid_k": "valid_K", "valid_max": "valid_max", "z_samples": "z_samples",
                 "z_every": "z_every", "seed": "seed", "precision": "precision", "cuda_graph": "cuda_graph"}  # fmt: skip


def test_bihm_train_options_default_to_the_training_config():
    """Catches a default changed in `bihm train` but not in TrainConfig (or the reverse): the CLI and
    the Python API would train different models from the same call."""
    from bihm_app.cli.train_cmd import train

    d = _defaults(train)
    for opt, field in TRAIN_OPTIONS.items():
        assert d[opt] == getattr(configs.TRAIN, field), opt
    assert d["data"] == configs.DATA and d["layers"] == configs.LAYERS
    assert d["epochs"] is None and d["patience"] is None  # None: the config's value (resume: the run's)
    from bihm_app.runner.semisup_loop import SemiSpec

    semi = SemiSpec()
    assert d["labels"] == 0  # unsupervised unless asked
    assert (d["gamma"], d["label_proposal"], d["label_at"], d["labelled_per_batch"], d["label_l2"], d["label_input"], d["label_l2_x"]) == (
        semi.gamma, semi.proposal, semi.placement, semi.labelled_per_batch, semi.label_l2, semi.label_input, semi.label_l2_x)


def test_sampling_commands_default_to_the_sampling_configs():
    """Catches `bihm sample/inpaint` and the dashboard drifting apart again (they once used 50 sweeps,
    K = 100 and 20 sweeps, K = 10)."""
    from bihm_app.cli.sample_cmd import inpaint, sample
    from bihm_app.tui.screens import inpaint as inpaint_screen

    for fn, cfg in ((sample, SAMPLING), (inpaint, INPAINTING)):
        d = _defaults(fn)
        assert (d["steps"], d["k"], d["inner_k"], d["keep_current"], d["seed"]) == (cfg.steps, cfg.K, cfg.inner_K, cfg.keep_current, cfg.seed)
    assert _defaults(sample)["method"] == SAMPLING.method
    assert inpaint_screen.CONFIG is INPAINTING


def test_new_run_form_defaults_come_from_the_configs():
    """Catches the dashboard's new-run form starting runs with other settings than `bihm train`."""
    from bihm_app.tui.launcher import NewRunSpec

    from bihm_app.runner.semisup_loop import SemiSpec

    spec, semi = NewRunSpec(), SemiSpec()
    assert (spec.K, spec.batch, spec.lr) == (configs.TRAIN.K, configs.TRAIN.batch_size, configs.TRAIN.lr)
    assert (spec.gamma, spec.label_at, spec.label_proposal) == (semi.gamma, semi.placement, semi.proposal)
    assert spec.data == configs.DATA
    assert configs.layer_sizes(spec.layers) and spec.epochs <= configs.TRAIN.epochs  # a smaller first run, on purpose


def test_the_run_spec_defaults_are_the_configs():
    """Catches a fourth copy of the training defaults growing back in the runner's RunSpec."""
    from bihm_app.engine.model import PAPER12
    from bihm_app.runner.train_loop import RunSpec

    spec = RunSpec()
    assert (spec.data, spec.layers, spec.train) == (configs.DATA, PAPER12, configs.TRAIN)


def test_overrides_validate_again():
    """Catches an override that skips validation (resume once set attributes on a mutable config)."""
    cfg = configs.train_config(K=5)
    assert cfg.K == 5 and cfg.lr == configs.TRAIN.lr
    with pytest.raises(ConfigError, match="epochs"):
        configs.train_config(cfg, epochs=0)
    with pytest.raises(ConfigError, match="unknown"):
        configs.train_config(cfg, nonsense=1)
    with pytest.raises(ConfigError, match="at least 2"):
        dataclasses.replace(SAMPLING, K=1, keep_current=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLING.K = 3  # type: ignore[misc]


def test_method_and_mask_names_are_one_vocabulary():
    """Catches the CLI's and the dashboard's names for the same thing diverging (resample/resampled,
    random:F/random)."""
    from bihm_app.runner.pictures import MASKS, missing_mask

    assert SamplingConfig(method="resampled").method == "resample"
    for mask in MASKS:
        assert missing_mask(mask, 784, (28, 28)).shape == (784,)
    assert missing_mask("random", 784, (28, 28)).sum() == missing_mask("random:0.5", 784, (28, 28)).sum() == 392
    with pytest.raises(ConfigError):
        missing_mask("diagonal", 784, (28, 28))


def test_seed_streams_are_distinct_and_documented():
    """Catches two purposes sharing a random stream by accident, or a stream that changed its seed
    (runs written before would no longer resume or re-evaluate to the same numbers)."""
    from bihm_app.runner import seeds

    seen = {}
    for stream in ("training", "validation", "z", "eval"):
        for index in (1, 2, 3):
            v = seeds.derive_seed(11, stream, index=index)
            assert v not in seen, (stream, index, seen.get(v))
            seen[v] = (stream, index)
    assert seeds.derive_seed(3, "training", rank=2, index=5) == 3 + 1 + 2 * 100_003 + 35
    assert seeds.derive_seed(3, "validation", index=4) == 3 * 1_000_003 + 21
    for stream in seeds.STREAMS:
        assert stream in seeds.__doc__
    with pytest.raises(ValueError):
        seeds.derive_seed(0, "misc")
