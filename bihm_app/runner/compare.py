"""What "compare runs" reports, for ``bihm ckpt compare`` and the dashboard's compare screen alike:
every metric **at each run's best epoch** — the epoch whose parameters ``best.h5`` holds: the highest
finite validation log p̃*(x) for BiHM runs, log p(x) for RWS runs (their early-stopping criterion),
the lowest validation error for semi-supervised ones — with its standard error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bihm_app.errors import BihmError
from bihm_app.runner.formats import flatten
from bihm_app.store.best_epoch import BEST_BY, ERROR_BY, RWS_BEST_BY, best_by, best_index, best_row, has_column

__all__ = ["BEST_BY", "RWS_BEST_BY", "ERROR_BY", "METRICS", "best_by", "best_index", "best_row", "at_best_epoch", "RunFacts", "run_facts", "compare_runs", "config_differences",
           "cached_test", "write_compare_report"]  # fmt: skip

#: The metrics of the dashboard's comparison: (metrics-file column, label).
METRICS = (("valid_log_ptilde", "log p~*"), ("valid_log_p", "log p"), ("log_z2", "2 log Z"))

def at_best_epoch(history: Mapping[str, Sequence], keys: Sequence[str], by: str = BEST_BY) -> tuple[int | None, dict[str, tuple]]:
    """(best epoch (:func:`best_row` by ``by``), {key: (value, se)}) from per-epoch columns
    (``history[key]``, ``history[key_se]``, ``history["epoch"]``): a checkpoint's history dict or the
    metrics file's epoch rows alike. Values that are missing or not finite come back as None."""
    i = best_row(history, by)
    if i is None:
        return None, {}
    epochs = list(history["epoch"]) if has_column(history, "epoch") else []
    epoch = int(epochs[i]) if i < len(epochs) else i + 1
    return epoch, {k: (_cell(history, k, i), _cell(history, f"{k}_se", i)) for k in keys if has_column(history, k)}


def _cell(history, key: str, i: int) -> float | None:
    if not has_column(history, key):
        return None
    col = history[key]
    if i >= len(col) or col[i] is None:
        return None
    v = float(col[i])
    return v if math.isfinite(v) else None


# -- the dashboard's comparison, from each run's metrics files ---------------------------------------
@dataclass
class RunFacts:
    """What the comparison needs of one run."""

    name: str
    config: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    epochs: int = 0
    best_epoch: int | None = None
    ess: float | None = None
    test: tuple[float, float, str] | None = None  # cached test log p*(x) (or log p̃*(x)): mean, se, label
    curve: tuple | None = None  # (epochs, valid log p~*, se) of the finite epochs
    problem: str | None = None


def run_facts(root: Path, name: str) -> RunFacts:
    """Config, best-epoch metrics (± se) and the validation curve of one run; problems go into
    ``problem`` instead of being raised."""
    from bihm_app.store.checkpoint import read_meta
    from bihm_app.store.metrics import read_run_metrics
    from bihm_app.store.runs import open_run

    facts = RunFacts(name)
    try:
        run = open_run(name, root)
    except BihmError as exc:
        facts.problem = str(exc)
        return facts
    for path in (run.best_path, run.checkpoint_path):
        if path.exists():
            try:
                facts.config = flatten(read_meta(path).get("config", {}), as_text=True)
                break
            except BihmError as exc:
                facts.problem = str(exc)
    facts.test = cached_test(run.path)
    rm = read_run_metrics(run.path)
    if not facts.config:
        for info in rm.run_info.values():
            if isinstance(info, dict) and isinstance(info.get("config"), dict):
                facts.config = flatten(info["config"], as_text=True)
    if rm.warnings and facts.problem is None:
        facts.problem = rm.warnings[0]
    e = rm.epochs
    facts.epochs = len(e)
    by = best_by(facts.config.get("train.method"))
    facts.best_epoch, cells = at_best_epoch(e, [col for col, _ in METRICS] + ["ess"], by) if len(e) else (None, {})
    if facts.best_epoch is not None:
        facts.ess = cells.pop("ess", (None, None))[0]
        facts.metrics = cells
        v = e["valid_log_ptilde"].astype(float)
        ok = np.isfinite(v)
        facts.curve = (e["epoch"][ok].astype(float), v[ok], np.nan_to_num(e["valid_log_ptilde_se"][ok].astype(float)))
    return facts


def cached_test(run_dir: Path) -> tuple[float, float, str] | None:
    """The cached test estimate of best.h5 (``bihm eval``/``report``/``repro``): log p*(x) when
    2 log Z is cached too, else log p̃*(x); None when nothing current is cached."""
    from bihm_app.runner.evaluation import log_pstar, run_cache
    from bihm_app.runner.report import headline_estimate

    cache = run_cache(run_dir)
    h = headline_estimate(cache)
    if h is None:
        return None
    zs = [z for z in cache.log_z2 if z.get("inner") == 1]
    if zs:
        mean, se = log_pstar(h, max(zs, key=lambda z: z["samples"]))
        return mean, se, f"p* K={h['K']}"
    return h["log_ptilde"], h.get("log_ptilde_se") or math.nan, f"p~* K={h['K']}"


def write_compare_report(root: Path, names: list[str]) -> Path:
    """A `bihm report` of the compared runs from what is cached (no K sweep computed), pictures included."""
    from datetime import datetime

    from bihm_app.runner.report import ReportOptions, write_report

    out = Path(root).parent / "reports" / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return write_report(root, names, out, ReportOptions(compute=False, device="cpu"), command="dashboard: compare → report")


def compare_runs(root: Path, names: list[str]) -> list[RunFacts]:
    return [run_facts(root, n) for n in names]


def config_differences(facts: list[RunFacts]) -> list[tuple[str, list[str], bool]]:
    """(key, values per run, differs?) for every config key, differing keys first."""
    keys = sorted({k for f in facts for k in f.config})
    rows = []
    for k in keys:
        vals = [f.config.get(k, "—") for f in facts]
        rows.append((k, vals, len(set(vals)) > 1))
    return sorted(rows, key=lambda r: (not r[2], r[0]))
