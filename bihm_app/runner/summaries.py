"""What the dashboard and ``bihm runs list`` show about runs: the list with validation trends, a run's
hyper-parameters and the tail of its launch log (plain data; the screens render it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bihm_app.errors import BihmError
from bihm_app.render.chart import sparkline
from bihm_app.runner.formats import layers_text
from bihm_app.store.checkpoint import read_meta
from bihm_app.store.metrics import ARCHIVE_NAME, metrics_files, read_run_metrics
from bihm_app.store.runs import RunFolder, RunSummary, list_runs

__all__ = ["SPARK_WIDTH", "RunRow", "TrendCache", "load_rows", "hyper_parameters", "tail_lines"]

SPARK_WIDTH = 12


@dataclass
class RunRow:
    """A run summary plus its validation trend (what one table row shows)."""

    summary: RunSummary
    trend: str = ""


class TrendCache:
    """Validation curves per run, re-read only when a run's metrics files change."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple, str, dict]] = {}

    def trend(self, run_path: Path) -> tuple[str, dict]:
        """(sparkline of valid log p~*, config from the latest metrics file's run info)."""
        files = metrics_files(run_path)
        archive = run_path / ARCHIVE_NAME  # compacted metrics of earlier attempts
        try:
            key = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files + ([archive] if archive.exists() else []))
        except OSError:
            return "", {}
        hit = self._cache.get(str(run_path))
        if hit is not None and hit[0] == key:
            return hit[1], hit[2]
        text, config = "", {}
        if files or archive.exists():
            try:
                rm = read_run_metrics(run_path)
                v = rm.epochs["valid_log_ptilde"].astype(float)
                v = v[np.isfinite(v)]
                text = sparkline(v, SPARK_WIDTH) if len(v) >= 2 else ""
                infos = [i for i in rm.run_info.values() if isinstance(i, dict)]
                config = infos[-1].get("config", {}) if infos else {}
                config = config if isinstance(config, dict) else {}
            except Exception:  # noqa: BLE001 - a bad metrics file only loses its sparkline
                text = "?"
        self._cache[str(run_path)] = (key, text, config)
        return text, config


def load_rows(root: Path, cache: TrendCache) -> list[RunRow]:
    """Summaries and trends of every run (runs in a worker thread; never raises for a bad run)."""
    rows = []
    for s in list_runs(root):
        if s.status == "corrupt":
            rows.append(RunRow(s))
            continue
        trend, config = cache.trend(Path(s.path))
        # a run that has not saved its first checkpoint yet: its metrics file knows the config
        if s.data is None and isinstance(config.get("data"), str):
            s.data = config["data"]
        layers = (config.get("model") or {}).get("layers")
        if s.layers is None and isinstance(layers, list):
            s.layers = layers
        rows.append(RunRow(s, trend))
    return rows


def tail_lines(path: Path, n: int, max_bytes: int = 16384) -> list[str]:
    """The last ``n`` lines of a text file (reads at most ``max_bytes`` from its end; never
    blocks: only a regular file is opened)."""
    from bihm_app.safe_files import FileProblem, open_regular_file

    try:
        with open_regular_file(path) as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except (OSError, FileProblem):
        return []
    return [line.rstrip() for line in data.splitlines()[-n:]]


def hyper_parameters(run: RunFolder, run_info: dict) -> list[tuple[str, str]]:
    """(name, value) pairs from the metrics file's run info, else the checkpoint's config."""
    cfg = run_info.get("config") if isinstance(run_info, dict) else None
    if not isinstance(cfg, dict):
        for path in (run.checkpoint_path, run.best_path):
            if path.exists():
                try:
                    cfg = read_meta(path, within=run.path).get("config")
                    break
                except BihmError:
                    continue
    if not isinstance(cfg, dict):
        return []
    model, train = cfg.get("model") or {}, cfg.get("train") or {}
    pairs = [("data", cfg.get("data")), ("layers", layers_text(model.get("layers"))),
             ("visible", model.get("n_visible")), ("device", cfg.get("device"))]  # fmt: skip
    for key in ("method", "K", "batch_size", "lr", "l1", "l1_per", "epochs", "patience", "valid_K", "valid_max", "z_samples", "seed"):
        if key in train:
            pairs.append((key, train[key]))
    return [(k, str(v)) for k, v in pairs if v is not None]
