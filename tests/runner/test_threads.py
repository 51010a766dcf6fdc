"""The thread policy (runner/threads.py): one thread for small work or a busy machine, the free cores
otherwise, an explicit --threads wins, bad values are one clear line."""

import math
import os

import pytest
import torch
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.errors import ConfigError
from bihm_app.runner.threads import (
    SMALL_WORK,
    check_option,
    choose_threads,
    configure_threads,
    machine_busy,
    usable_cpus,
    work_size,
)

BIG = 100 * SMALL_WORK


@pytest.fixture(autouse=True)
def _no_omp_cap(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_small_nets_get_one_thread_even_on_an_idle_machine():
    """The dna 12,6 net at B·K = 1000 does ~2·10⁶ multiply-adds per product: a pool would only cost."""
    work = work_size((180, 12, 6), 1000)
    assert work < SMALL_WORK
    assert choose_threads("auto", work, busy=0.0, cpus=8).threads == 1
    # paper12 at B·K = 1000 is big: 784·300 multiply-adds per row
    assert work_size((784, 300, 200), 1000) == 1000 * 784 * 300


@pytest.mark.parametrize("busy, expected", [(0.0, 8), (0.2, 8), (3.0, 5), (6.6, 1), (7.9, 1), (30.0, 1)])
def test_big_work_takes_the_free_cores(busy, expected):
    """Catches oversubscription (more threads than free cores) and a pool that ignores the load."""
    assert choose_threads("auto", BIG, busy=busy, cpus=8).threads == expected


def test_explicit_count_wins_and_omp_num_threads_caps_auto(monkeypatch):
    assert choose_threads("3", 1.0, busy=100.0, cpus=2).threads == 3
    assert choose_threads(5, 1.0).threads == 5
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert choose_threads("auto", BIG, busy=0.0, cpus=8).threads == 2


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", ""])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="--threads"):
        choose_threads(bad, BIG, busy=0.0, cpus=4)
    with pytest.raises(ConfigError, match="--threads"):
        check_option(bad)
    assert check_option(" AUTO ") == "auto" and check_option("3") == "3"


def test_configure_threads_applies_the_choice():
    before = torch.get_num_threads()
    try:
        assert configure_threads("auto", (180, 12, 6), 1000).threads == 1
        assert torch.get_num_threads() == 1
        configure_threads("2")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_the_machine_load_is_read():
    busy = machine_busy()
    assert math.isfinite(busy) and busy >= 0
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


def test_cli_refuses_bad_threads_before_creating_a_run(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", "dna", "--layers", "4", "--threads", "0", "--runs-dir", str(tmp_path)])
    assert res.exit_code == 1 and "--threads" in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())
    res = runner.invoke(app, ["sample", "--fresh", "--layers", "4", "--data", "dna", "--threads", "x", "--n", "2"])
    assert res.exit_code == 1 and "--threads" in res.output
