"""The public Python API, called as a user would: the README's example runs as written."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import bihm_app as bihm
from bihm_app import api
from bihm_app.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """Catches a README example that no longer runs (a renamed function or keyword, a wrong
    attribute) and an API that trains without writing the run folder the CLI would write."""
    torch.set_num_threads(1)
    monkeypatch.setenv("BIHM_HOME", str(tmp_path))
    # the per-epoch 2 log Z of validation with 10⁴ samples instead of the default 10⁵ (two thirds of
    # this test's time): the example's own text and calls are unchanged, and the estimator is tested
    # in tests/unit and tests/cli
    monkeypatch.setattr(api, "TRAIN", replace(api.TRAIN, z_samples=10_000))
    scope: dict = {}
    exec(compile(_readme_example(), str(README), "exec"), scope)
    model, est, done = scope["model"], scope["est"], scope["done"]
    assert isinstance(model, bihm.Model) and isinstance(model.model, bihm.BiHM)
    assert model.path.parent.parent == tmp_path / "runs" and (model.path.parent / "checkpoint.h5").exists()
    assert model.meta["progress"]["epoch"] >= 1 and model.meta["config"]["train"]["epochs"] == 5
    assert est.n == 500 and est.K == 1000 and np.isfinite(est.log_ptilde.mean) and est.log_ptilde.se > 0
    assert est.log_p.mean <= est.log_ptilde.mean + 5 * est.log_ptilde.se + 5  # both nats of the same data
    assert done.x.shape == (16, 123) and done.missing.sum() == round(0.5 * 123)
    known = ~done.missing
    assert np.array_equal(done.x[:, known], scope["pictures"].x[:, known])  # known pixels stay clamped
    assert "±" in capsys.readouterr().out


def _tiny():
    return bihm.BiHM(bihm.ModelConfig(6, (4, 3)))


def test_api_takes_an_engine_model_and_checks_its_input():
    """Catches evaluate/sample silently accepting data of the wrong width or non-binary values."""
    m = _tiny()
    x = np.random.default_rng(0).integers(0, 2, (20, 6))
    est = bihm.evaluate(m, x, K=5)
    assert est.n == 20 and est.K == 5
    assert bihm.sample(m, 3, method="ancestral").x.shape == (3, 6)
    assert bihm.sample(m, 3, method="resampled", K=4).means.shape == (3, 6)  # the old dashboard name
    with pytest.raises(ConfigError, match="visible units"):
        bihm.evaluate(m, np.zeros((2, 5)), K=2)
    with pytest.raises(ConfigError, match="0 or 1"):
        bihm.evaluate(m, np.full((2, 6), 0.5), K=2)
    with pytest.raises(ConfigError, match="no data set"):
        bihm.evaluate(m, "test")
    with pytest.raises(ConfigError, match="unknown sampling method"):
        bihm.sample(m, 2, method="magic")


def test_every_package_declares_its_public_names():
    """Catches a package whose ``__all__`` names something it does not define."""
    import importlib

    for mod in ("bihm_app", "bihm_app.api", "bihm_app.runner", "bihm_app.engine", "bihm_app.data", "bihm_app.store",
                "bihm_app.render", "bihm_app.cli", "bihm_app.tui"):  # fmt: skip
        m = importlib.import_module(mod)
        assert isinstance(m.__all__, list), mod
        for name in m.__all__:
            assert getattr(m, name) is not None, f"{mod}.{name}"
