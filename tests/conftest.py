import os

import pytest

# The CLI's Rich consoles read COLUMNS when they are created — at import, during collection (in
# pytest-xdist workers too), before any fixture runs: fix the width here so output does not depend
# on the terminal or on how the tests are distributed.
os.environ["COLUMNS"] = os.environ.get("BIHM_TEST_COLUMNS", "120")


@pytest.fixture(autouse=True)
def _bihm_home(tmp_path, monkeypatch):
    """Every test gets its own BIHM_HOME, so nothing is written outside tmp dirs."""
    monkeypatch.setenv("BIHM_HOME", str(tmp_path / "bihm-home"))
    monkeypatch.setenv("COLUMNS", os.environ.get("BIHM_TEST_COLUMNS", "120"))
    yield
