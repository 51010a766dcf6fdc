"""Fixtures shared by the checkpoint tests."""

import pytest

from bihm_app.store.checkpoint import save_checkpoint
from tests.store.helpers import make_arrays, make_meta


@pytest.fixture
def good(tmp_path):
    """A valid checkpoint at runs/a/best.h5 under tmp_path."""
    path = tmp_path / "runs" / "a" / "best.h5"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, make_arrays(), make_meta())
    return path
