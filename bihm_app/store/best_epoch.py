"""Which epoch a run's ``best.h5`` holds, from its per-epoch validation columns (a checkpoint's
history dict or a metrics file's epoch rows): the training loop keeps the epoch with the highest
validation log p̃*(x) (BiHM), log p(x) (``--method rws``, its early-stopping criterion) or, for a
semi-supervised run, the lowest validation error — the first of equals. One implementation for the
runs list (``store/runs.py``), the comparisons and the dashboard (``runner/compare.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: The column that picks the best epoch (higher is better) of a BiHM run ...
BEST_BY = "valid_log_ptilde"
#: ... of an RWS run (``--method rws`` early-stops on validation log p(x)) ...
RWS_BEST_BY = "valid_log_p"
#: ... unless the run has this one (semi-supervised runs: lower is better), as their ``best.h5``.
ERROR_BY = "valid_error"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def best_index(values: Sequence) -> int | None:
    """Index of the largest finite value (the first of equals), None when there is none."""
    best = None
    for i, v in enumerate(values):
        v = float(v) if v is not None else None
        if _finite(v) and (best is None or v > float(values[best])):
            best = i
    return best


def best_by(method: object) -> str:
    """The column whose highest value picks the best epoch of a run trained with ``method``
    (``config.train.method``: "bihm", "rws"; anything else, as an unknown one, is BiHM's)."""
    return RWS_BEST_BY if method == "rws" else BEST_BY


def best_row(history: Mapping[str, Sequence], by: str = BEST_BY) -> int | None:
    """Index of the epoch whose parameters ``best.h5`` holds: the lowest finite validation error where
    the run records one (a semi-supervised run keeps its best classifier), else the highest ``by``
    (:func:`best_by` of the run's method); the first of equals, as the training loop keeps the first."""
    if has_column(history, ERROR_BY):
        i = best_index([None if v is None else -float(v) for v in list(history[ERROR_BY])])
        if i is not None:
            return i
    return best_index(list(history[by])) if has_column(history, by) else None


def has_column(history, key: str) -> bool:
    """``history`` (a dict of lists or a structured array) has a column ``key``."""
    names = getattr(getattr(history, "dtype", None), "names", None)
    return key in names if names is not None else (key in history and history[key] is not None)
