"""Fixtures of the dashboard tests: a runs folder with two good runs and a corrupt one."""

from __future__ import annotations

import shutil
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
