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
    real = TrendCache.entry

    def entry(self, path):
        if Path(path).name == "a":
            raise ValueError("boom")
        return real(self, path)

    monkeypatch.setattr(summaries.TrendCache, "entry", entry)
    rows = {r.summary.name: r for r in load_rows(root, TrendCache())}
    assert rows["b"].summary.status == "finished"
    assert rows["a"].summary.status == "corrupt" and "ValueError: boom" in rows["a"].summary.error
    assert str(root / "a") in rows["a"].summary.error


def test_a_run_whose_metrics_are_unreadable_shows_the_checkpoints_epoch_count(tmp_path):
    """A finished run with a damaged metrics file was listed as "finished", "0" epochs done (the
    metrics' count) beside its checkpoint's best score. Catches a row that prefers an empty progress
    to the checkpoint's count, and one that does not say its metrics are damaged."""
    from tests.tui.runs_fixture import make_run

    root = tmp_path / "runs"
    run = make_run(root, "damaged", epochs=4)
    make_run(root, "fine", epochs=3)
    (run.path / "metrics-1.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    rows = {r.summary.name: r for r in load_rows(root, TrendCache())}
    assert rows["damaged"].progress.epoch_text() == "4" and rows["damaged"].summary.epoch == 4
    assert rows["fine"].progress.epoch_text() == "3/100"
    # and the row says why (the table marks it "damaged"; it showed "finished" with no word)
    assert "metrics-1.h5" in rows["damaged"].metrics_problem and rows["fine"].metrics_problem is None


def test_loading_rows_in_several_threads_at_once_does_not_crash(tmp_path):
    """The dashboard's runs list can load rows in two threads at once (a refresh starting while the
    last one still runs). Opening a metrics file called libhdf5 through ctypes without the GIL or
    h5py's lock, so another thread could be inside the library at the same time: a segmentation
    fault (3 of 3 runs of 15 s; 2 of 3 of 6 s). Three threads load the rows of four runs with cold
    caches for 4.5 s in a child process, which must end normally (since the HDF5 link check is one
    walk, 4.5 s make ~245 loads of the rows, as many as 6 s made when the test was written)."""
    import subprocess
    import sys

    from tests.faults.helpers import child_env
    from tests.tui.runs_fixture import make_run

    root = tmp_path / "runs"
    for i in range(4):
        make_run(root, f"r{i}")
    code = (
        "import threading, time\n"
        "from pathlib import Path\n"
        "from bihm_app.runner.summaries import TrendCache, load_rows\n"
        f"root, stop = Path({str(root)!r}), time.time() + 4.5\n"
        "def work():\n"
        "    while time.time() < stop:\n"
        "        assert len(load_rows(root, TrendCache())) == 4\n"
        "ts = [threading.Thread(target=work) for _ in range(3)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env())
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stderr[-2000:])
