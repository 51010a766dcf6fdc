"""`bihm runs list`: every run under the runs folder with its state and best validation score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, out, runs_root
from bihm_app.runner.formats import age, layers_text, printable

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
    "empty": "dim",
}


@app.command("list")
@cli_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")] = None,
) -> None:
    """Name, state, data, layers, method, epochs done, best valid log p̃* and age of every run."""
    from rich.markup import escape

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
    for table in runs_tables(runs, f"runs in {escape(str(root))}", out.width):
        out.print(table)
    for r in runs:
        if r.error:
            out.print(f"[red]{escape(printable(r.name))}:[/] {escape(printable(r.error))}", highlight=False)
        elif r.note:
            out.print(f"[dim]{escape(printable(r.name))}: {escape(printable(r.note))}[/]", highlight=False)


def runs_tables(runs, title: str, width: int) -> list:
    """The runs as Rich tables that fit ``width`` (render/fit_table.py): name and status always,
    then best valid log p̃*, data, epochs done, method, age and layers as the width allows."""
    from rich.markup import escape

    from bihm_app.render.fit_table import Column, fit_table

    columns = [
        Column("name", style="bold"), Column("status"), Column("data", drop=5), Column("layers", drop=1),
        Column("method", drop=3), Column("epochs done", "right", drop=4, short="done"),
        Column("best valid log p̃*", "right", drop=6, short="best p̃*"), Column("age", "right", drop=2),
    ]  # fmt: skip
    rows = []
    for r in runs:
        style = STATE_STYLE.get(r.status)
        rows.append([
            escape(r.name), f"[{style}]{r.status}[/]" if style else escape(r.status), escape(r.data or "—"),
            layers_text(r.layers, limit=24), escape(r.method or "—"), "—" if r.epoch is None else str(r.epoch),
            f"{r.best_valid:.2f}" if r.best_valid is not None and math.isfinite(r.best_valid) else "—", age(r.age_s),
        ])  # fmt: skip
    return fit_table(columns, rows, width, title=title)
