"""Fixtures of the dashboard tests: a runs folder with two good runs and a corrupt one."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.tui.runs_fixture import make_corrupt_run, make_run


@pytest.fixture(scope="session")
def _template_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("template") / "runs"
    make_run(root, "alpha", layers=(8, 4), epochs=4, K=10)
    make_run(root, "beta", layers=(10, 5, 3), epochs=6, K=5, lr=3e-4, seed=1, offset=4.0)
    make_corrupt_run(root, "gamma")
    return root


@pytest.fixture
def runs_root(_template_runs, tmp_path) -> Path:
    """A private copy of the template runs folder (tests may change it)."""
    root = tmp_path / "bihm-home" / "runs"
    shutil.copytree(_template_runs, root)
    return root


@pytest.fixture(autouse=True)
def _short_chains(monkeypatch):
    """Short Gibbs chains on the dashboard's picture screens (3 sweeps instead of 50 and 100): these
    tests check what the screens show and do, not the sampler, whose law the exact tests in
    ``tests/unit`` check with the defaults' K; `bihm sample`'s defaults stay the CLI tests'. A test
    may set its own sweeps with ``monkeypatch`` again."""
    from bihm_app.runner.pictures import INPAINTING, SAMPLING

    monkeypatch.setattr("bihm_app.tui.screens.samples.SAMPLING", replace(SAMPLING, steps=3))
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=3))
