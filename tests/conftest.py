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


def _move_engine_tests_to(device: str) -> None:
    """``BIHM_TEST_DEVICE=cuda python -m pytest tests/unit``: run the engine's exact tests on another
    device (a lent GPU). New tensors and modules default to it, and so do the seeded generators that
    every draw goes through; nothing else of a test changes, so a test that passes on the CPU and
    fails here has found a device-dependent bug (or a test that assumes the CPU)."""
    import torch

    from bihm_app.engine import model

    torch.set_default_device(device)
    model.make_generator.__defaults__ = (device,)


if os.environ.get("BIHM_TEST_DEVICE"):
    _move_engine_tests_to(os.environ["BIHM_TEST_DEVICE"])
