"""The live series of one run, owned in one place (dolphie's "metric manager" pattern).

:class:`RunSeries` tails every ``metrics-<n>.h5`` of a run folder with the store's SWMR
:class:`~bihm_app.store.metrics.MetricsReader` and keeps the rows; charts and labels only read it.
``poll()`` is cheap (it reads only rows committed since the last call) and says whether anything
changed, so the screen redraws on a timer only when there is something new.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from bihm_app.errors import BihmError
from bihm_app.runner.compare import at_best_epoch, best_by
from bihm_app.store.metrics import ARCHIVE_NAME, EPOCH_DTYPE, UPDATE_DTYPE, ArchivedSeries, MetricsReader, archive_key
from bihm_app.store.metrics import attempt_number, decode_events, metrics_files, read_archived_series
from bihm_app.tui.format import pm
from bihm_app.tui.widgets.curves import Curve, bin_means, moving_average


EPOCH_LABELS = {"valid_log_ptilde": "log p~*", "valid_log_p": "log p", "log_z2": "2 log Z", "valid_error": "error %"}
BOUND_COLUMNS = ("valid_log_ptilde", "valid_log_p")
LOGZ_COLUMNS = ("log_z2",)
ERROR_COLUMNS = ("valid_error",)  # semi-supervised runs: the validation classification error
PERCENT_COLUMNS = frozenset(ERROR_COLUMNS)  # drawn in percent


def _stat_key(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class RunSeries:
    """All metrics of a run folder, tailed live."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._readers: dict[Path, MetricsReader] = {}
        self._closed: set[Path] = set()
        self._bad: dict[Path, str] = {}
        self._bad_stat: dict[Path, tuple | None] = {}  # a bad file's size, time and inode when it failed
        self.updates = np.zeros(0, dtype=UPDATE_DTYPE)
        self.epochs = np.zeros(0, dtype=EPOCH_DTYPE)
        self.events: list[dict] = []
        self.run_info: dict = {}
        self.version = 0  # bumped whenever rows arrive
        self._rate: list[tuple[float, int]] = []  # (wall time, step) samples for updates/s
        self._archive_key: tuple | None = None
        self._covered: set[int] = set()  # attempts whose rows came from the archive

    # -- reading ---------------------------------------------------------------------------------
    @property
    def warnings(self) -> list[str]:
        return list(self._bad.values())

    def _sync_archive(self) -> bool:
        """(Re)load the run's metrics archive when it appeared or changed (a resume compacted old
        attempts into it): everything is rebuilt from the archive plus the files it does not cover."""
        key = archive_key(self.run_dir)
        if key == self._archive_key:
            return False
        self._archive_key = key
        self.close()
        self._closed.clear()
        self._bad.clear()
        a = ArchivedSeries.empty()
        if key is not None:
            try:
                a = read_archived_series(self.run_dir)
            except BihmError as exc:
                self._bad[self.run_dir / ARCHIVE_NAME] = str(exc)
        self.updates, self.epochs, self.events, self._covered = a.updates, a.epochs, a.events, a.covered
        self.run_info = a.run_info if a.run_info is not None else self.run_info
        return True

    def poll(self) -> bool:
        """Read new rows of every metrics file (new attempts are picked up); True if any arrived."""
        changed = self._sync_archive()
        for path in metrics_files(self.run_dir):
            if path in self._closed or attempt_number(path) in self._covered or not self._worth_trying(path):
                continue
            reader = self._readers.get(path)
            if reader is None:
                try:
                    reader = MetricsReader(path)
                except BihmError as exc:
                    self._mark_bad(path, str(exc))
                    continue
                self._readers[path] = reader
                self._bad.pop(path, None)
                self._start_attempt(reader.run_info)
            try:
                delta = reader.poll()
            except (BihmError, OSError, RuntimeError, ValueError) as exc:
                self._mark_bad(path, f"metrics file {path}: {' '.join(str(exc).split())[:200]}", final=True)
                reader.close()
                self._readers.pop(path, None)
                continue
            if delta:
                changed = True
                if len(delta.updates):
                    self.updates = np.concatenate([self.updates, delta.updates])
                if len(delta.epochs):
                    self.epochs = np.concatenate([self.epochs, delta.epochs])
                if len(delta.events):
                    self.events += decode_events(delta.events)
            if delta.closed:
                reader.close()
                self._readers.pop(path, None)
                self._closed.add(path)
        if changed:
            self.version += 1
            self._rate.append((time.monotonic(), self.step))
            self._rate = self._rate[-20:]
        return changed

    def _mark_bad(self, path: Path, why: str, final: bool = False) -> None:
        """``final``: it failed after rows were read from it (reading it again would repeat them)."""
        self._bad[path], self._bad_stat[path] = why, ("final",) if final else _stat_key(path)

    def _worth_trying(self, path: Path) -> bool:
        """A file not marked bad, or one that could not be opened and has changed since: a trainer
        creates its metrics file in place and only then opens it for concurrent readers, so a poll
        in between fails (more likely on a loaded machine) — the run view then stopped following
        that live run for good."""
        if path not in self._bad:
            return True
        failed_at = self._bad_stat.get(path)
        return failed_at != ("final",) and _stat_key(path) != failed_at

    def _start_attempt(self, info: dict) -> None:
        """A resumed attempt drops the rows of earlier attempts after the step it resumed from."""
        if isinstance(info, dict):
            self.run_info = info
            start = info.get("start_step")
            if isinstance(start, int):
                self.updates = self.updates[self.updates["step"] <= start]
                self.epochs = self.epochs[self.epochs["step"] <= start]

    def close(self) -> None:
        for r in self._readers.values():
            r.close()
        self._readers.clear()

    # -- views -----------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return int(self.updates["step"][-1]) if len(self.updates) else 0

    @property
    def epoch(self) -> int:
        e = [int(self.updates["epoch"][-1])] if len(self.updates) else []
        e += [int(self.epochs["epoch"][-1])] if len(self.epochs) else []
        return max(e, default=0)

    def updates_per_second(self) -> float | None:
        """Recent training speed seen through the metrics file (None until two polls saw rows)."""
        if len(self._rate) < 2 or self._rate[-1][0] - self._rate[0][0] <= 0:
            return None
        (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
        return (s1 - s0) / (t1 - t0)

    def best_valid(self) -> tuple[float, float] | None:
        """(valid log p~*, its standard error) of the epoch best.h5 holds (the highest log p~*; for an
        RWS run the highest log p; for a semi-supervised run the lowest validation error), or None
        before the first validation."""
        if not len(self.epochs):
            return None
        config = self.run_info.get("config") if isinstance(self.run_info, dict) else None
        train = config.get("train") if isinstance(config, dict) else None
        _, cells = at_best_epoch(self.epochs, ["valid_log_ptilde"], best_by(train.get("method") if isinstance(train, dict) else None))
        value, se = cells.get("valid_log_ptilde", (None, None))
        return None if value is None else (value, se if se is not None else float("nan"))

    def has_error(self) -> bool:
        """True for a semi-supervised run once it reported a validation error."""
        return bool(len(self.epochs)) and bool(np.isfinite(self.epochs["valid_error"]).any())

    def best_error(self) -> tuple[float, float] | None:
        """(lowest validation error, its standard error) of a semi-supervised run, or None."""
        if not self.has_error():
            return None
        v = self.epochs["valid_error"].astype(float)
        i = int(np.nanargmin(v))
        return float(v[i]), float(self.epochs["valid_error_se"][i])

    def log_lines(self, n: int) -> list[str]:
        """The last ``n`` lines of a log written from the metrics file, for runs without a log file
        (started from the shell): a line per epoch and the events, in the order of their steps."""
        rows: list[tuple[int, float, str]] = []
        for e in self.epochs:
            text = f"epoch {int(e['epoch'])}: log p~* {pm(float(e['valid_log_ptilde']), float(e['valid_log_ptilde_se']))}"
            if np.isfinite(e["valid_error"]):
                text += f", error {100 * float(e['valid_error']):.2f} %"
            rows.append((int(e["step"]), float(e["time"]), text))
        for e in self.events:  # dicts with str kind and message (store.metrics.decode_events)
            rows.append((int(e["step"]), float(e["time"]), e["message"] if e["kind"] == "phase" else f"{e['kind']}: {e['message']}"))
        return [text for _, _, text in sorted(rows, key=lambda r: (r[0], r[1]))][-n:]  # by step, then time

    def last_epoch_value(self, column: str) -> tuple[float, float] | None:
        """The latest finite value of an epoch column with its standard error."""
        if not len(self.epochs):
            return None
        v = self.epochs[column].astype(float)
        ok = np.flatnonzero(np.isfinite(v))
        if not len(ok):
            return None
        i = int(ok[-1])
        return float(v[i]), float(self.epochs[f"{column}_se"][i])

    def _epoch_window(self, last_epochs: int | None) -> float:
        if not last_epochs:
            return -math.inf
        return self.epoch - last_epochs

    def batch_curve(self, smooth: bool = False, last_epochs: int | None = None) -> Curve:
        """The per-update batch bound (the training objective), binned to at most MAX_POINTS."""
        u = self.updates[self.updates["epoch"] >= self._epoch_window(last_epochs)]
        x = u["step"].astype(float)
        y = u["objective"].astype(float)
        ok = np.isfinite(y)
        x, y = x[ok], y[ok]
        if smooth:
            y = moving_average(y, max(5, len(y) // 50))
        x, y = bin_means(x, y)
        return Curve("smoothed batch bound" if smooth else "batch bound", x, y)

    def epoch_curves(self, last_epochs: int | None = None, columns: tuple[str, ...] = BOUND_COLUMNS) -> list[Curve]:
        """Per-epoch curves with their standard errors: valid log p~* and log p by default, or
        ``LOGZ_COLUMNS`` (2 log Z lives on another scale, so it gets its own view)."""
        e = self.epochs[self.epochs["epoch"] >= self._epoch_window(last_epochs)]
        x = e["epoch"].astype(float)
        out = []
        for col in columns:
            label = EPOCH_LABELS[col]
            y, se = e[col].astype(float), e[f"{col}_se"].astype(float)
            if col in PERCENT_COLUMNS:
                y, se = 100 * y, 100 * se
            ok = np.isfinite(y)
            if ok.any():
                out.append(Curve(label, x[ok], y[ok], np.nan_to_num(se[ok], nan=0.0)))
        return out
