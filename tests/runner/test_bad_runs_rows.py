"""The dashboard's runs table (``load_rows``) with a bad run folder.

Before: one run folder without read permission (or whose row raised anything) emptied the whole
dashboard table with a toast naming no file.
"""

from __future__ import annotations

from pathlib import Path

from bihm_app.runner import summaries
from bihm_app.runner.summaries import TrendCache, load_rows
from tests.store.test_runs_bad_runs import _run_with_checkpoint, unlistable  # noqa: F401 - a fixture


def test_an_unreadable_run_folder_is_one_corrupt_row(tmp_path, unlistable):  # noqa: F811
    """Catches a PermissionError from one run folder emptying the whole runs table."""
    root = tmp_path / "runs"
    _run_with_checkpoint(root, "good")
    locked = _run_with_checkpoint(root, "locked")
    unlistable.add(str(locked.path))
    rows = {r.summary.name: r for r in load_rows(root, TrendCache())}
    assert sorted(rows) == ["good", "locked"]
    assert rows["good"].summary.status == "finished"
    s = rows["locked"].summary
    assert s.status == "corrupt" and str(locked.path) in s.error and "Permission denied" in s.error


def test_a_row_that_raises_is_caught_per_run(tmp_path, monkeypatch):
    """Catches any exception of one run's row (trend, progress) escaping ``load_rows``."""
    root = tmp_path / "runs"
    _run_with_checkpoint(root, "a")
    _run_with_checkpoint(root, "b")
    real = TrendCache.trend

    def trend(self, path):
        if Path(path).name == "a":
            raise ValueError("boom")
        return real(self, path)

    monkeypatch.setattr(summaries.TrendCache, "trend", trend)
    rows = {r.summary.name: r for r in load_rows(root, TrendCache())}
    assert rows["b"].summary.status == "finished"
    assert rows["a"].summary.status == "corrupt" and "ValueError: boom" in rows["a"].summary.error
    assert str(root / "a") in rows["a"].summary.error
