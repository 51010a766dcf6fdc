"""What the dashboard and ``bihm runs list`` show about runs: the list with validation trends, a run's
hyper-parameters and the tail of its launch log (plain data; the screens render it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bihm_app.errors import BihmError
from bihm_app.render.chart import sparkline
from bihm_app.runner.formats import layers_text
from bihm_app.store.checkpoint import read_meta
from bihm_app.runner.preflight import UsableCheckpoint, usable_checkpoint
from bihm_app.runner.progress import RunProgress, run_progress
from bihm_app.store.metrics import ARCHIVE_NAME, decode_events, metrics_files, read_run_metrics
from bihm_app.store.runs import RunFolder, RunSummary, list_runs, summarize_run

__all__ = ["SPARK_WIDTH", "RunRow", "TrendCache", "SavedCounts", "load_rows", "with_saved_count", "hyper_parameters",
           "tail_lines"]  # fmt: skip

SPARK_WIDTH = 12


@dataclass
class RunRow:
    """A run summary plus what its metrics files say (what one table row shows): the validation
    trend, the progress (``runner/progress.py``, as on the run view) and, when a checkpoint is
    damaged, which one actions use instead (``runner/preflight.py``, as on the run view)."""

    summary: RunSummary
    trend: str = ""
    progress: RunProgress | None = None
    model: UsableCheckpoint | None = None  # checked only for runs with a damaged checkpoint
    metrics_problem: str | None = None  # a metrics file that could not be read (its rows are missing)
    no_checkpoint: bool = False  # neither best.h5 nor checkpoint.h5 exists yet (a new or empty run)

    @property
    def warning(self) -> str | None:
        return self.model.warning if self.model is not None else None

    @property
    def refusal(self) -> str | None:
        """Why pictures (samples, inpainting, layers) cannot be made of this run, or None."""
        return self.refusal_to("draw")

    def refusal_to(self, doing: str) -> str | None:
        """Why this run cannot be used to ``doing`` ("draw", "classify with"), or None."""
        model = UsableCheckpoint(None, none_saved=True) if self.no_checkpoint else self.model
        return model.refusal(self.summary.name, doing) if model is not None else None


@dataclass
class _Cached:
    key: tuple
    trend: str
    config: dict
    running: RunProgress | None  # the progress if status.json says running …
    idle: RunProgress | None  # … and otherwise
    problem: str | None = None  # the first warning of reading the metrics


class TrendCache:
    """Validation curves and progress per run, re-read only when a run's metrics files change."""

    def __init__(self) -> None:
        self._cache: dict[str, _Cached] = {}

    def _read(self, run_path: Path) -> _Cached | None:
        files = metrics_files(run_path)
        archive = run_path / ARCHIVE_NAME  # compacted metrics of earlier attempts
        try:
            key = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files + ([archive] if archive.exists() else []))
        except OSError:
            return None
        hit = self._cache.get(str(run_path))
        if hit is not None and hit.key == key:
            return hit
        entry = _Cached(key, "", {}, None, None)
        if files or archive.exists():
            try:
                rm = read_run_metrics(run_path)
                entry.problem = rm.warnings[0] if rm.warnings else None
                v = rm.epochs["valid_log_ptilde"].astype(float)
                v = v[np.isfinite(v)]
                entry.trend = sparkline(v, SPARK_WIDTH) if len(v) >= 2 else ""
                infos = [i for i in rm.run_info.values() if isinstance(i, dict)]
                info = infos[-1] if infos else {}
                config = info.get("config", {})
                entry.config = config if isinstance(config, dict) else {}
                events = decode_events(rm.events)
                entry.running = run_progress(rm.updates, rm.epochs, events, info, "running")
                entry.idle = run_progress(rm.updates, rm.epochs, events, info, "idle")
            except Exception:  # noqa: BLE001 - a bad metrics file only loses its sparkline and progress
                entry.trend = "?"
        self._cache[str(run_path)] = entry
        return entry

    def entry(self, run_path: Path) -> _Cached:
        """What the run's metrics files say (sparkline, config, progress, the first problem reading
        them), read once per change of the files; empty for a run without any."""
        return self._read(run_path) or _Cached((), "", {}, None, None)


def load_rows(root: Path, cache: TrendCache) -> list[RunRow]:
    """Summaries, trends and progress of every run (runs in a worker thread; never raises for a bad run)."""
    rows = []
    for s in list_runs(root):
        try:
            rows.append(_row(s, cache))
        except Exception as exc:  # noqa: BLE001 - one bad run is shown as corrupt, never empties the table
            s.status, s.error = "corrupt", s.error or _row_problem(s, exc)
            rows.append(RunRow(s))
    return rows


def _row_problem(s: RunSummary, exc: Exception) -> str:
    if isinstance(exc, BihmError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"run {s.path}: cannot read {exc.filename or s.path} ({exc.strerror or type(exc).__name__})"
    return f"run {s.path}: unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"


def _row(s: RunSummary, cache: TrendCache) -> RunRow:
    """One table row: the summary plus its trend and progress (raises for an unreadable run)."""
    path = Path(s.path)
    model = None
    if s.status == "corrupt":  # which checkpoint, if any, actions can still use (as the run view does)
        model = usable_checkpoint(RunFolder(path), "best")
        if model.path is None:  # (a damaged status.json beside no checkpoint: the status is what is corrupt)
            return RunRow(s, model=model, no_checkpoint=model.none_saved)
    entry = cache.entry(path)  # stats the metrics files once per row
    trend, config = entry.trend, entry.config
    # a run that has not saved its first checkpoint yet: its metrics file knows the config
    if s.data is None and isinstance(config.get("data"), str):
        s.data = config["data"]
    layers = (config.get("model") or {}).get("layers")
    if s.layers is None and isinstance(layers, list):
        s.layers = layers
    progress = entry.running if s.status == "running" else entry.idle
    if progress is not None and (progress.step or progress.epoch):  # the metrics are ahead of status.json
        s.epoch = max(s.epoch or 0, progress.epoch)
        s.step = max(s.step or 0, progress.step)
    elif progress is not None:
        progress = with_saved_count(progress, s)
    run = RunFolder(path)
    none_yet = not any(os.path.lexists(p) for p in (run.best_path, run.checkpoint_path))
    return RunRow(s, trend, progress, model, entry.problem, no_checkpoint=none_yet)


def with_saved_count(progress: RunProgress, saved: RunSummary | None) -> RunProgress:
    """``progress`` from the metrics files or, when they hold no readable row (a damaged or missing
    metrics file), with the epoch and step count the checkpoint or status.json saved (``saved``):
    what the runs table and the run view both show."""
    if progress.step or progress.epoch or saved is None or not (saved.epoch or saved.step):
        return progress
    return replace(progress, epoch=saved.epoch or 0, step=saved.step or 0)


class SavedCounts:
    """The run view's summary of a run's saved files (checkpoints, status.json; as a runs-table row
    has it), read again only when one of them changed; for the counts and scores to show when its
    metrics files hold no readable row."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self.summary: RunSummary | None = None

    def progress(self, run: RunFolder, progress: RunProgress) -> RunProgress:
        """:func:`with_saved_count` of the run's saved files (not read while the metrics have rows)."""
        if progress.step or progress.epoch:
            return progress
        key = tuple(_stat_key(p) for p in (run.checkpoint_path, run.best_path, run.status_path))
        if key != self._key:
            self._key, self.summary = key, summarize_run(run.path)
        return with_saved_count(progress, self.summary)


def _stat_key(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


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
    model, train = cfg.get("model"), cfg.get("train")
    model, train = model if isinstance(model, dict) else {}, train if isinstance(train, dict) else {}
    pairs = [("data", cfg.get("data")), ("layers", layers_text(model.get("layers"))),
             ("visible", model.get("n_visible")), ("device", cfg.get("device"))]  # fmt: skip
    for key in ("method", "precision", "K", "batch_size", "lr", "l1", "l1_per", "epochs", "patience", "valid_K", "valid_max",
                "z_samples", "seed"):
        if key in train:
            pairs.append((key, train[key]))
    return [(k, str(v)) for k, v in pairs + label_settings(cfg) if v is not None]


#: A semi-supervised run's settings (``bihm train --labels …``): (shown name, config key), the
#: ``semisup`` section first, the model's label config for runs stored before it existed.
LABEL_SETTINGS = (("labels", "n_labels"), ("label at", "placement"), ("proposal", "proposal"), ("gamma", "gamma"),
                  ("per batch", "labelled_per_batch"), ("label l2", "label_l2"), ("label l2 x", "label_l2_x"),
                  ("label in", "label_input"))  # fmt: skip


def label_settings(cfg: dict) -> list[tuple[str, object]]:
    """The label settings of a semi-supervised run's config (none for other runs)."""
    semi = cfg.get("semisup") if isinstance(cfg.get("semisup"), dict) else {}
    labels = (cfg.get("model") or {}).get("labels")
    labels = labels if isinstance(labels, dict) else {}
    if not semi and not labels:
        return []
    old = {"label_l2": labels.get("l2"), "label_l2_x": labels.get("l2_x"), "label_input": labels.get("inputs")}
    merged = {**labels, **old, **{k: v for k, v in semi.items() if v is not None}}
    if merged.get("placement") != "bottom":
        merged.pop("label_input", None)  # q(y | x, h_1)'s inputs: only for the label at the bottom
    return [(name, merged.get(key)) for name, key in LABEL_SETTINGS]
