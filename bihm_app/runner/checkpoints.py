"""What ``bihm ckpt show`` and ``bihm ckpt compare`` report, as plain data (the CLI renders it).

The metrics of a comparison are those at each run's best epoch (``runner/compare.py``), as on the
dashboard's compare screen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bihm_app.errors import ConfigError
from bihm_app.runner.compare import at_best_epoch, best_by, best_index
from bihm_app.runner.formats import flatten

__all__ = ["METRICS", "checkpoint_summary", "comparison", "series", "json_safe", "finite", "runs_lacking"]

#: Metrics shown by `show` and `compare`, in order: (history key, label). Higher is better for all.
METRICS = (
    ("valid_log_ptilde", "valid log p̃*"),
    ("valid_log_p", "valid log p"),
    ("log_z2", "2 log Z"),
    ("valid_log_pstar", "valid log p*"),
    ("train_objective", "train objective"),
    ("ess", "ESS"),
)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _column(history: dict, key: str) -> list:
    v = history.get(key)
    return v if isinstance(v, list) else []


def _entry(history: dict, key: str, i: int | None) -> tuple[float | None, float | None, int | None]:
    """(value, se, epoch) of entry ``i`` of a history column."""
    if i is None:
        return None, None, None
    ses, epochs = _column(history, f"{key}_se"), _column(history, "epoch")
    se = ses[i] if i < len(ses) and finite(ses[i]) else None
    return float(history[key][i]), se, (epochs[i] if i < len(epochs) else i + 1)


def _last(history: dict, key: str):
    values = _column(history, key)
    return _entry(history, key, next((i for i in range(len(values) - 1, -1, -1) if finite(values[i])), None))


def _best(history: dict, key: str):
    return _entry(history, key, best_index(_column(history, key)))


def series(history: dict, key: str) -> tuple[list[float], list[float], list[float | None]]:
    """(epochs, values, se) of the finite entries of one history column."""
    values = _column(history, key)
    epochs = _column(history, "epoch") or list(range(1, len(values) + 1))
    ses = _column(history, f"{key}_se")
    xs, ys, es = [], [], []
    for i, v in enumerate(values):
        if finite(v) and i < len(epochs) and finite(epochs[i]):
            xs.append(float(epochs[i]))
            ys.append(float(v))
            es.append(float(ses[i]) if i < len(ses) and finite(ses[i]) else None)
    return xs, ys, es


def runs_lacking(runs: list[dict], metric: str, option: str = "--metric") -> list[str]:
    """Labels of the compared ``runs`` (``comparison()["runs"]``) whose history has no value in
    column ``metric`` (no column, or an empty one); a ConfigError naming ``option`` and the columns
    the runs do have when none has it. Runs that recorded no epoch yet (no values at all) are left
    out of both."""
    columns: list[str] = []
    lacking = []
    for r in runs:
        history = r.get("history") or {}
        names = [k for k, v in history.items() if isinstance(v, list) and v]
        if not names:
            continue
        columns += [k for k in names if k not in columns]
        if metric not in names:
            lacking.append(r["label"])
    if columns and metric not in columns:
        raise ConfigError(f"{option} {metric!r}: no compared run has this history column; they have: {', '.join(columns)}")
    return lacking


def json_safe(v):
    """NaN/inf -> None, recursively (JSON has no such numbers)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def param_counts(ckpt) -> dict[str, int]:
    params = ckpt.params()
    p = sum(a.size for k, a in params.items() if k.startswith("p_"))
    q = sum(a.size for k, a in params.items() if k.startswith("q_"))
    y = sum(a.size for k, a in params.items() if k.startswith("y_"))  # a semi-supervised label layer
    counts = {"p": int(p), "q": int(q), "total": int(p + q + y)}
    if y:
        counts["labels"] = int(y)
    return counts


def checkpoint_summary(path: Path) -> dict:
    """Config, data identity, parameter counts, array groups, progress and the last and best value of
    every metric of one checkpoint (what ``bihm ckpt show --json`` prints)."""
    from bihm_app.store.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    meta, history = ckpt.meta, ckpt.meta["history"]
    groups: dict[str, list[int]] = {}
    for name, a in ckpt.arrays.items():
        g = groups.setdefault(name.split("/", 1)[0], [0, 0, 0])
        g[0], g[1], g[2] = g[0] + 1, g[1] + int(a.size), g[2] + int(a.nbytes)
    metrics = {}
    for key, _ in METRICS:
        if key in history:
            (last, last_se, last_ep), (best, best_se, best_ep) = _last(history, key), _best(history, key)
            metrics[key] = {"last": last, "last_se": last_se, "last_epoch": last_ep,
                            "best": best, "best_se": best_se, "best_epoch": best_ep}  # fmt: skip
    return {
        "path": str(path), "attrs": ckpt.attrs, "config": meta["config"], "data": meta["data"],
        "progress": meta["progress"], "parameters": param_counts(ckpt),
        "arrays": {g: {"count": c, "elements": n, "bytes": b} for g, (c, n, b) in sorted(groups.items())},
        "metrics": metrics,
        "history_length": max((len(v) for v in history.values() if isinstance(v, list)), default=0),
    }  # fmt: skip


def unique_labels(paths: list[Path]) -> list[str]:
    """Short names for the columns: the run name (``run/best`` or ``#n`` only where needed)."""

    def short(p: Path) -> str:
        return p.parent.name if p.name in ("checkpoint.h5", "best.h5") else p.stem

    labels = [short(p) for p in paths]
    labels = [f"{p.parent.name}/{p.stem}" if labels.count(lab) > 1 else lab for p, lab in zip(paths, labels)]
    out_labels, seen = [], {}
    for lab in labels:
        if labels.count(lab) > 1:
            seen[lab] = seen.get(lab, 0) + 1
            lab = f"{lab}#{seen[lab]}"
        out_labels.append(lab)
    return out_labels


def comparison(paths: list[Path]) -> dict:
    """Two or more checkpoints side by side (what ``bihm ckpt compare --json`` prints): per run its
    config, data, progress, parameters, metrics at its best epoch and history; the config keys
    (``config.…``, ``data.…``) in first-seen order and those whose values differ."""
    from bihm_app.store.checkpoint import load_checkpoint

    if len(paths) < 2:
        raise ConfigError("compare needs at least two runs or checkpoints")
    ckpts = [load_checkpoint(p) for p in paths]
    flats = []
    for c in ckpts:
        flat = {f"config.{k}": v for k, v in flatten(c.meta["config"]).items()}
        flat.update({f"data.{k}": v for k, v in flatten(c.meta["data"]).items()})
        flats.append(flat)
    keys: list[str] = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    differing = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    shown = [key for key, _ in METRICS if any(key in c.meta["history"] for c in ckpts)]
    runs = []
    for lab, p, c in zip(unique_labels(paths), paths, ckpts):
        epoch, cells = at_best_epoch(c.meta["history"], shown, best_by(_method(c.meta)))
        metrics = {k: dict(zip(("value", "se", "epoch"), (*cells.get(k, (None, None)), epoch))) for k in shown}
        best = dict(zip(("value", "se", "epoch"), _best(c.meta["history"], "valid_log_ptilde")))
        runs.append({"label": lab, "path": str(p), "config": c.meta["config"], "data": c.meta["data"],
                     "progress": c.meta["progress"], "parameters": param_counts(c), "metrics": metrics,
                     "best_valid_log_ptilde": best, "history": c.meta["history"]})  # fmt: skip
    return {"runs": runs, "config_differences": {k: [f.get(k) for f in flats] for k in differing},
            "keys": keys, "flat": flats}  # fmt: skip


def _method(meta: dict) -> object:
    """``config.train.method`` of a checkpoint's meta (None where it is missing or malformed)."""
    train = (meta.get("config") or {}).get("train") if isinstance(meta.get("config"), dict) else None
    return train.get("method") if isinstance(train, dict) else None
