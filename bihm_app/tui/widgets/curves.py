"""What a chart draws: a :class:`Curve` (x, y and a standard error), and the cheap binning and
smoothing that keep long series fast to draw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_POINTS", "Curve", "bin_means", "moving_average"]

#: Most points drawn for the per-update curve: longer series are averaged into this many bins.
MAX_POINTS = 200  # about two points per chart column: more only costs drawing time


@dataclass
class Curve:
    """One line of a chart: x, y and an optional standard error (band y ± 2 se)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    se: np.ndarray | None = None


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
