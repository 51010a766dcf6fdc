"""The live series of one run, owned in one place (dolphie's "metric manager" pattern).

:class:`RunSeries` tails every ``metrics-<n>.h5`` of a run folder with the store's SWMR
:class:`~bihm_app.store.metrics.MetricsReader` and keeps the rows; charts and labels only read it.
``poll()`` is cheap (it reads only rows committed since the last call) and says whether anything
changed, so the screen redraws on a timer only when there is something new.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bihm_app.errors import BihmError
from bihm_app.store.metrics import (
    ARCHIVE_NAME,
    EPOCH_DTYPE,
    EVENT_DTYPE,
    UPDATE_DTYPE,
    MetricsReader,
    attempt_number,
    decode_events,
    metrics_files,
    read_archive,
)

#: Most points drawn for the per-update curve: longer series are averaged into this many bins.
MAX_POINTS = 200  # about two points per chart column: more only costs plotext time


@dataclass
class Curve:
    """One line of a chart: x, y and an optional standard error (band y ± 2 se)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    se: np.ndarray | None = None


def _without_attempt(rows: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Archive rows (with a leading ``attempt`` column) as rows of a live metrics table."""
    out = np.zeros(len(rows), dtype=dtype)
    for name in dtype.names:
        out[name] = rows[name]
    return out


def bin_means(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Average consecutive points into at most ``n`` bins (keeps charts cheap to draw)."""
    if len(x) <= n:
        return x, y
    edges = np.linspace(0, len(x), n + 1).astype(int)
    sx = np.add.reduceat(x, edges[:-1]) / np.diff(edges)
    sy = np.add.reduceat(y, edges[:-1]) / np.diff(edges)
    return sx, sy


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what there is)."""
    if window <= 1 or len(y) == 0:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


EPOCH_LABELS = {"valid_log_ptilde": "log p~*", "valid_log_p": "log p", "log_z2": "2 log Z", "valid_error": "error %"}
BOUND_COLUMNS = ("valid_log_ptilde", "valid_log_p")
LOGZ_COLUMNS = ("log_z2",)
ERROR_COLUMNS = ("valid_error",)  # semi-supervised runs: the validation classification error
PERCENT_COLUMNS = frozenset(ERROR_COLUMNS)  # drawn in percent


class RunSeries:
    """All metrics of a run folder, tailed live."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._readers: dict[Path, MetricsReader] = {}
        self._closed: set[Path] = set()
        self._bad: dict[Path, str] = {}
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
        path = self.run_dir / ARCHIVE_NAME
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key == self._archive_key:
            return False
        self._archive_key = key
        self.close()
        self._closed.clear()
        self._bad.clear()
        self._covered = set()
        self.updates = np.zeros(0, dtype=UPDATE_DTYPE)
        self.epochs = np.zeros(0, dtype=EPOCH_DTYPE)
        self.events = []
        if key is None:
            return True
        try:
            rm, self._covered = read_archive(self.run_dir)
        except BihmError as exc:
            self._bad[path] = str(exc)
            return True
        self.updates = _without_attempt(rm.updates, UPDATE_DTYPE)
        self.epochs = _without_attempt(rm.epochs, EPOCH_DTYPE)
        self.events = decode_events(_without_attempt(rm.events, EVENT_DTYPE))
        if rm.attempts and isinstance(rm.run_info.get(rm.attempts[-1]), dict):
            self.run_info = rm.run_info[rm.attempts[-1]]
        return True

    def poll(self) -> bool:
        """Read new rows of every metrics file (new attempts are picked up); True if any arrived."""
        changed = self._sync_archive()
        for path in metrics_files(self.run_dir):
            if path in self._closed or path in self._bad or attempt_number(path) in self._covered:
                continue
            reader = self._readers.get(path)
            if reader is None:
                try:
                    reader = MetricsReader(path, within=self.run_dir)
                except BihmError as exc:
                    self._bad[path] = str(exc)
                    continue
                self._readers[path] = reader
                self._start_attempt(reader.run_info)
            try:
                delta = reader.poll()
            except (BihmError, OSError, RuntimeError, ValueError) as exc:
                self._bad[path] = f"metrics file {path}: {' '.join(str(exc).split())[:200]}"
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
        """(best valid log p~*, its standard error), or None before the first validation."""
        v = self.epochs["valid_log_ptilde"] if len(self.epochs) else np.zeros(0)
        ok = np.isfinite(v)
        if not ok.any():
            return None
        i = int(np.flatnonzero(ok)[np.argmax(v[ok])])
        return float(v[i]), float(self.epochs["valid_log_ptilde_se"][i])

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
