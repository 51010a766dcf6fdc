import os

import pytest


@pytest.fixture(autouse=True)
def _bihm_home(tmp_path, monkeypatch):
    """Every test gets its own BIHM_HOME, so nothing is written outside tmp dirs."""
    monkeypatch.setenv("BIHM_HOME", str(tmp_path / "bihm-home"))
    monkeypatch.setenv("COLUMNS", os.environ.get("BIHM_TEST_COLUMNS", "120"))
    yield
