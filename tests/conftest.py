import os

import pytest

# The CLI's Rich consoles read COLUMNS when they are created — at import, during collection (in
# pytest-xdist workers too), before any fixture runs: fix the width here so output does not depend
# on the terminal or on how the tests are distributed.
os.environ["COLUMNS"] = os.environ.get("BIHM_TEST_COLUMNS", "120")


def pytest_configure(config):
    """`-n auto` without ``--dist``: work stealing instead of xdist's default ``load``. With
    ``load`` each worker keeps a queue of tests it was sent; at the end one worker could still run
    its queue (the exact Gibbs tests, 18 s) while the other was idle. A worker that runs out steals
    half of the other's pending tests, so both finish within about one test of each other. An
    explicit ``--dist`` is left alone."""
    explicit = any(a == "-d" or a.startswith("--dist") for a in config.invocation_params.args)
    if getattr(config.option, "dist", "no") == "load" and not explicit:
        config.option.dist = "worksteal"


@pytest.fixture(autouse=True)
def _bihm_home(tmp_path, monkeypatch):
    """Every test gets its own BIHM_HOME, so nothing is written outside tmp dirs."""
    monkeypatch.setenv("BIHM_HOME", str(tmp_path / "bihm-home"))
    monkeypatch.setenv("COLUMNS", os.environ.get("BIHM_TEST_COLUMNS", "120"))
    yield


def _install_test_generators(device: str | None, offset: int) -> None:
    """Two switches for the engine's exact tests (``tests/unit``), both through ``make_generator``:

    * ``BIHM_TEST_DEVICE=cuda python -m pytest tests/unit``: run them on another device (a lent GPU).
      New tensors and modules default to it, and so do the seeded generators that every draw goes
      through; nothing else of a test changes, so a test that passes on the CPU and fails here has
      found a device-dependent bug (or a test that assumes the CPU).
    * ``BIHM_TEST_SEED_OFFSET=N``: every seed given to ``make_generator`` (the tiny models' init in
      ``tests/unit/tiny.py`` included) is shifted by N. A statistical test must pass for any N at its
      stated false-alarm rate; this is the CPU's way to see what another device's generator (a
      different stream of random numbers) does to it. Tests outside ``tests/unit`` pin seeded
      outputs (snapshots, fixtures) and are not meant to run with an offset.
    """
    import torch

    from bihm_app.engine import model

    original = model.make_generator
    default_device = device or "cpu"
    if device:
        torch.set_default_device(device)

    def make_generator(seed: int, device: torch.device | str = default_device) -> torch.Generator:
        return original(int(seed) + offset, device)

    make_generator.__doc__ = original.__doc__
    model.make_generator = make_generator  # the name every test module imports from here
    import bihm_app.engine as engine

    engine.make_generator = make_generator


if os.environ.get("BIHM_TEST_DEVICE") or int(os.environ.get("BIHM_TEST_SEED_OFFSET", "0") or 0):
    _install_test_generators(os.environ.get("BIHM_TEST_DEVICE") or None, int(os.environ.get("BIHM_TEST_SEED_OFFSET", "0") or 0))
