"""Default run names (issue #15): short, readable, unique, one function for `bihm train` and the dashboard."""

from __future__ import annotations

import re
from datetime import datetime

from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.engine.model import PAPER12
from bihm_app.runner.naming import architecture_label, default_run_name
from bihm_app.runner.thesis import RWS7_LAYERS, UCI_LAYERS
from bihm_app.store.runs import name_letters, new_run, runs_root
from bihm_app.tui.launcher import NewRunSpec

NOW = datetime(2026, 11, 26, 5, 15, 56)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,127}$")


def test_known_architectures_get_their_names_others_depth_and_width():
    assert default_run_name("bmnist", PAPER12, now=NOW) == "bmnist-paper12-1126a"
    assert default_run_name("bmnist", "paper12", now=NOW) == "bmnist-paper12-1126a"
    assert default_run_name("bmnist", RWS7_LAYERS, now=NOW) == "bmnist-rws7-1126a"
    assert default_run_name("adult", UCI_LAYERS["adult"], now=NOW) == "adult-thesis-1126a"
    # another set's table 3.2 network is not "thesis" for this set
    assert architecture_label("connect4", UCI_LAYERS["adult"]) == "4L100"
    assert default_run_name("bmnist", "200,200", now=NOW) == "bmnist-2L200-1126a"
    assert default_run_name("dna", (12, 30, 6), now=NOW) == "dna-3L30-1126a"


def test_default_names_fit_an_80_column_table():
    """The old default (data, every layer size, seconds) was 62 characters for paper12."""
    for data in ("bmnist", "mnist-dyn", "ocr_letters", "caltech101", *UCI_LAYERS):
        for layers in (PAPER12, UCI_LAYERS.get(data, (200, 200)), (1000, 1000, 1000)):
            name = default_run_name(data, layers, now=NOW)
            assert NAME.match(name) and len(name) <= 26, name
    odd = default_run_name("../my data set with a very long name", (3,), now=NOW)
    assert NAME.match(odd) and len(odd) <= 30 and "/" not in odd and " " not in odd


def test_a_letter_makes_the_name_unique_in_its_runs_folder(tmp_path):
    letters = list(name_letters())
    assert letters[:3] == ["a", "b", "c"] and letters[26:28] == ["aa", "ab"] and len(set(letters)) == len(letters)
    taken = []
    for _ in range(28):
        name = default_run_name("dna", (12, 6), tmp_path, NOW)
        assert name not in taken
        (tmp_path / name).mkdir()
        taken.append(name)
    assert taken[0] == "dna-2L12-1126a" and taken[25] == "dna-2L12-1126z" and taken[27] == "dna-2L12-1126ab"


def test_new_run_without_a_name_takes_the_next_letter_even_when_racing(tmp_path):
    """Two creators that computed the same default name both get a folder (mkdir decides)."""
    a = new_run(tmp_path, stem="dna-2L12-1126")
    b = new_run(tmp_path, stem="dna-2L12-1126")
    assert (a.name, b.name) == ("dna-2L12-1126a", "dna-2L12-1126b")


def test_bihm_train_and_the_dashboard_launcher_use_the_same_default_name():
    root = runs_root()
    expected = default_run_name("dna", (12, 6), root)
    assert NewRunSpec(data="dna", layers="12,6").run_name(root) == expected
    res = CliRunner().invoke(app, ["train", "--data", "dna", "--layers", "12,6", "--epochs", "1", "--valid-max", "100",
                                   "--z-samples", "0", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (root / expected).is_dir()
    # the next default, in the CLI and in the dashboard, is the next letter
    following = default_run_name("dna", (12, 6), root)
    assert following == expected[:-1] + "b" and NewRunSpec(data="dna", layers="12,6").run_name(root) == following
