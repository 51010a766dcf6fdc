"""Shared pieces of the `bihm` commands: consoles, the error edge, run/checkpoint resolution."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from bihm_app.errors import BihmError

#: Results go to stdout, diagnostics and progress bars to stderr (so `--json` output stays clean).
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def cli_errors(fn: F) -> F:
    """Show a `BihmError` as one red line on stderr and exit 1 — never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BihmError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def runs_root(runs_dir: Path | None = None) -> Path:
    """The runs folder: `--runs-dir`, else `$BIHM_HOME/runs`, else the platform data dir."""
    if runs_dir is not None:
        return Path(runs_dir)
    home = os.environ.get("BIHM_HOME")
    if home:
        return Path(home) / "runs"
    import platformdirs

    return Path(platformdirs.user_data_dir("bihm", appauthor=False)) / "runs"
