"""`bihm runs list`: every run under the runs folder with its state and best validation score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, out, runs_root

app = typer.Typer(name="runs", help="List the training runs.", no_args_is_help=True, rich_markup_mode="rich")


@app.callback()
def _runs() -> None:
    """List the training runs (a group, so that `bihm runs list` stays `list` on its own too)."""

STATE_STYLE = {
    "running": "bold cyan",
    "finished": "green",
    "stopped": "yellow",
    "crashed": "bold red",
    "diverged": "bold red",
    "corrupt": "bold red",
    "created": "dim",
    "unknown": "dim",
}


def format_age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` (— when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _layers(layers) -> str:
    if not layers:
        return "—"
    text = ",".join(str(n) for n in layers)
    return text if len(text) <= 24 else f"{text[:20]}… (L={len(layers)})"


@app.command("list")
@cli_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")] = None,
) -> None:
    """Name, state, data, layers, method, epoch, best valid log p̃* and age of every run."""
    from rich.markup import escape
    from rich.table import Table

    from bihm_app.store.runs import list_runs

    root = runs_root(runs_dir)
    runs = list_runs(root)
    if as_json:
        doc = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.to_dict().items()}
            for r in runs
        ]
        out.print_json(json.dumps(doc))
        return
    if not runs:
        out.print(f"no runs under {escape(str(root))} — start one with [bold]bihm train[/]", highlight=False)
        return
    t = Table(title=f"runs in {escape(str(root))}", title_justify="left")
    for col, justify in (
        ("name", "left"), ("status", "left"), ("data", "left"), ("layers", "left"), ("method", "left"),
        ("epoch", "right"), ("best valid log p̃*", "right"), ("age", "right"),
    ):  # fmt: skip
        t.add_column(col, justify=justify, no_wrap=col in ("name", "status"))
    for r in runs:
        best = f"{r.best_valid:.2f}" if r.best_valid is not None and math.isfinite(r.best_valid) else "—"
        t.add_row(
            escape(r.name),
            f"[{STATE_STYLE.get(r.status, '')}]{r.status}[/]" if STATE_STYLE.get(r.status) else r.status,
            escape(r.data or "—"),
            _layers(r.layers),
            r.method or "—",
            "—" if r.epoch is None else str(r.epoch),
            best,
            format_age(r.age_s),
        )
    out.print(t)
    for r in runs:
        if r.error:
            out.print(f"[red]{escape(r.name)}:[/] {escape(r.error)}", highlight=False)
