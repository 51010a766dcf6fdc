"""One bad run must never hide the others (``bihm runs list`` and the dashboard share ``list_runs``).

Before: a status.json nesting bomb raised RecursionError out of ``list_runs``, a forged meta with
a string ``config.train`` raised AttributeError, and a run folder without read permission raised
PermissionError from ``metrics_files`` (in the dashboard, and in every command that opened the run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bihm_app.errors import RunError
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.metrics import metrics_files
from bihm_app.store.runs import list_runs, new_run, open_run
from tests.store.helpers import edit_meta, make_arrays, make_meta


def _run_with_checkpoint(root, name):
    run = new_run(root, name)
    save_checkpoint(run.checkpoint_path, make_arrays(), make_meta())
    run.write_status("finished", epoch=3)
    return run


@pytest.fixture
def unlistable(monkeypatch):
    """Make folders in the returned set unlistable, as chmod 000 does for a non-root user (the
    tests may run as root, whom permissions do not stop)."""
    blocked: set[str] = set()
    real_listdir, real_iterdir = os.listdir, Path.iterdir

    def listdir(path="."):
        if os.fspath(path) in blocked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_listdir(path)

    def iterdir(self):
        if str(self) in blocked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(Path, "iterdir", iterdir)
    return blocked


def test_each_bad_run_is_listed_as_corrupt_and_the_others_stay(tmp_path, unlistable):
    """Catches one bad run (nesting bomb, forged meta, unreadable folder) failing the whole listing."""
    root = tmp_path / "runs"
    _run_with_checkpoint(root, "good")
    bomb = _run_with_checkpoint(root, "bomb")
    bomb.status_path.write_text("[" * 100_000 + "]" * 100_000)
    forged = _run_with_checkpoint(root, "forged")

    def train_str(m):
        m["config"]["train"] = "x"
        return m

    edit_meta(forged.checkpoint_path, train_str)
    locked = _run_with_checkpoint(root, "locked")
    unlistable.add(str(locked.path))

    runs = {r.name: r for r in list_runs(root)}
    assert sorted(runs) == ["bomb", "forged", "good", "locked"]
    assert runs["good"].status == "finished" and runs["good"].error is None
    for name, words in {"bomb": ("status.json", "nested too deeply"),
                        "forged": ("checkpoint.h5", "config.train"),
                        "locked": (str(locked.path), "Permission denied")}.items():  # fmt: skip
        r = runs[name]
        assert r.status == "corrupt", (name, r)
        assert "\n" not in r.error and all(w in r.error for w in words), (name, r.error)


def test_an_unexpected_failure_is_caught_per_run(tmp_path, monkeypatch):
    """Catches any exception of one run's summary escaping ``list_runs`` (not only BihmError)."""
    root = tmp_path / "runs"
    _run_with_checkpoint(root, "a")
    _run_with_checkpoint(root, "b")
    import bihm_app.store.checkpoint as checkpoint_mod

    real = checkpoint_mod.read_meta

    def flaky(path, within=None):
        if Path(path).parent.name == "a":
            raise AttributeError("'str' object has no attribute 'get'")
        return real(path, within=within)

    monkeypatch.setattr(checkpoint_mod, "read_meta", flaky)
    runs = {r.name: r for r in list_runs(root)}
    assert runs["b"].status == "finished"
    assert runs["a"].status == "corrupt" and "AttributeError" in runs["a"].error and str(root / "a") in runs["a"].error


def test_an_unreadable_run_folder_is_one_line_for_every_command(tmp_path, unlistable):
    """Catches the PermissionError traceback of ``metrics_files`` (eval, resume, sample, ckpt show,
    report all open the run through ``open_run``)."""
    root = tmp_path / "runs"
    run = _run_with_checkpoint(root, "p3")
    unlistable.add(str(run.path))
    with pytest.raises(RunError, match="cannot read the run folder .*Permission denied"):
        open_run("p3", root)
    with pytest.raises(RunError, match=f"run {run.path}: cannot read the run folder"):
        metrics_files(run.path)
