"""`bihm ckpt compare`: two or more runs side by side — config differences, metrics at each run's
best epoch (as on the dashboard's compare screen), overlaid curves."""

from __future__ import annotations

import json
import math
from typing import Annotated

import typer

from bihm_app.cli.ckpt_common import AsJson, Latest, RunsDir, fmt_value, resolve, show_value
from bihm_app.cli.common import err, out
from bihm_app.runner.checkpoints import METRICS, comparison, finite, json_safe, runs_lacking, series


def _chart(series: dict, bands: dict, title: str):
    """A terminal line chart (``bands``: standard errors per series), or None without a renderer."""
    try:
        from bihm_app.render.chart import LineChart
    except ImportError:  # pragma: no cover - the render layer ships with the package
        return None
    return LineChart(series, height=16, title=title, x_label="epoch", bands=bands)


def compare(
    targets: Annotated[list[str], typer.Argument(help="Two or more runs or checkpoint files.")],
    latest: Latest = False,
    metric: Annotated[str, typer.Option(help="History column to plot.")] = "valid_log_ptilde",
    chart: Annotated[bool, typer.Option(help="Draw the curves as a terminal chart (every epoch of each run, also after its best one).")] = True,
    diff_only: Annotated[bool, typer.Option("--diff-only", help="Show only the configuration keys that differ.")] = False,
    as_json: AsJson = False,
    runs_dir: RunsDir = None,
) -> None:
    """Configuration differences, metrics at each run's best epoch with standard errors, overlaid curves."""
    doc = comparison([resolve(t, runs_dir, latest) for t in targets])
    keys, flats = doc.pop("keys"), doc.pop("flat")
    lacking = runs_lacking(doc["runs"], metric)  # before any output: a column no run has is refused
    if as_json:
        out.print_json(json.dumps(json_safe(doc), default=str))
        return
    runs, differing = doc["runs"], doc["config_differences"]
    for table in _config_tables([r["label"] for r in runs], keys, flats, differing, diff_only, out.width):
        out.print(table)
    if not differing:
        out.print("[green]identical configuration and data[/]")
    for table in _metrics_tables(runs, out.width):
        out.print(table)
    if chart:
        if lacking:
            from rich.markup import escape

            err.print(f"[yellow]note:[/] --metric {escape(repr(metric))}: not in the history of {escape(', '.join(lacking))} "
                      "(left out of the chart)", highlight=False)  # fmt: skip
        _print_chart(runs, metric)


def _run_columns(labels: list[str]):
    """One right-aligned column per run; ``#1``, ``#2`` … when the labels do not fit (explained below)."""
    from bihm_app.render.fit_table import Column

    return [Column(lab, "right", short=f"#{i + 1}", explain=True) for i, lab in enumerate(labels)]


def _config_tables(labels, keys, flats, differing, diff_only: bool, width: int):
    from rich.markup import escape

    from bihm_app.render.fit_table import Column, fit_table

    rows = []
    for k in keys:
        if diff_only and k not in differing:
            continue
        shown = [show_value(f.get(k)) for f in flats]
        if k == "data.sha256":
            shown = [s[:12] + "…" if len(s) > 12 else s for s in shown]
        cells = [("≠ " if k in differing else "  ") + escape(k), *(escape(v) for v in shown)]
        rows.append([f"[bold yellow]{c}[/]" for c in cells] if k in differing else cells)
    title = "configuration" + (" (differences only)" if diff_only else "")
    return fit_table([Column("key"), *_run_columns(labels)], rows, width, title=title)


def _metrics_tables(runs: list[dict], width: int):
    from bihm_app.render.fit_table import Column, fit_table

    rows = [["epochs done / step", *[f"{r['progress'].get('epoch')} / {r['progress'].get('step')}" for r in runs]],
            ["parameters", *[f"{r['parameters']['total']:,}" for r in runs]]]  # fmt: skip
    for key, label in METRICS:
        if key not in runs[0]["metrics"]:
            continue
        cells = [r["metrics"][key] for r in runs]
        vals = [c["value"] for c in cells if finite(c["value"])]
        top = max(vals) if len(vals) > 1 else None
        rows.append([label, *[f"[bold green]{fmt_value(c['value'], c['se'], key=key)}[/]" if c["value"] == top
                              else fmt_value(c["value"], c["se"], key=key) for c in cells]])  # fmt: skip
    best = [r["best_valid_log_ptilde"] for r in runs]
    rows.append(["highest valid log p̃* (epoch)", *[f"{fmt_value(b['value'], b['se'])} ({show_value(b['epoch'])})" if finite(b["value"]) else "—" for b in best]])
    columns = [Column("metric"), *_run_columns([r["label"] for r in runs])]
    return fit_table(columns, rows, width, title="metrics at each run's best epoch (± standard error)")


def chart_series(runs: list[dict], metric: str) -> tuple[dict, dict, list[str]]:
    """(series, bands, labels of runs drawn from their latest checkpoint) of the chart: every epoch
    of each run — a run's best.h5 stops at its best epoch, the curve goes on to its latest one."""
    from pathlib import Path

    from bihm_app.runner.histories import full_history

    series_, bands, extended = {}, {}, []
    for r in runs:
        history, source = full_history(Path(r["path"]), r["history"])
        if source != Path(r["path"]):
            extended.append(r["label"])
        xs, ys, es = series(history, metric)
        if xs:
            series_[r["label"]] = (xs, ys)
            if any(e is not None for e in es):
                bands[r["label"]] = [math.nan if e is None else e for e in es]
    return series_, bands, extended


def _print_chart(runs: list[dict], metric: str) -> None:
    series_, bands, extended = chart_series(runs, metric)
    if not series_:
        out.print(f"[dim]no history of {metric!r} to plot[/]")
        return
    renderable = _chart(series_, bands, f"{dict(METRICS).get(metric, metric)} by epoch")
    if renderable is None:
        err.print("[dim](terminal charts are not available in this install)[/]")
    else:
        out.print(renderable)
        if extended:
            out.print(f"[dim]curves of {', '.join(extended)}: every epoch, from checkpoint.h5 (best.h5 stops at the best "
                      "epoch); the tables: each run at its best epoch[/]", highlight=False)  # fmt: skip
