"""`bihm runs list`: every run under the runs folder with its state and best validation score."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import cli_errors, out, runs_root
from bihm_app.runner.formats import age, layers_text

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
            layers_text(r.layers, limit=24),
            r.method or "—",
            "—" if r.epoch is None else str(r.epoch),
            best,
            age(r.age_s),
        )
    out.print(t)
    for r in runs:
        if r.error:
            out.print(f"[red]{escape(r.name)}:[/] {escape(r.error)}", highlight=False)
