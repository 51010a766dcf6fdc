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


def parse_int_list(spec: str, what: str) -> list[int]:
    """'1,10,100' -> [1, 10, 100]; every value ≥ 1, else a ConfigError naming ``what``."""
    from bihm_app.errors import ConfigError

    try:
        vals = [int(float(s)) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{what} {spec!r} is not a comma-separated list of integers") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(f"{what} must be at least 1, got {spec!r}")
    return vals


def load_model(arg: str, runs_dir: Path | None, device: str = "auto", which: str = "best"):
    """A run name, run folder or checkpoint file -> (BiHM on ``device`` in eval mode, checkpoint meta).

    ``which`` picks best.h5 or checkpoint.h5 ("latest") inside a run folder.
    """
    import torch

    from bihm_app.engine.model import BiHM, resolve_device
    from bihm_app.errors import ConfigError
    from bihm_app.store.checkpoint import load_checkpoint
    from bihm_app.store.runs import resolve_checkpoint

    try:
        dev = resolve_device(device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    path = resolve_checkpoint(arg, runs_root(runs_dir), which=which)
    ck = load_checkpoint(path)
    model = BiHM(ck.model_config())
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.from_numpy(ck.params()[name]))
    model.to(dev).eval()
    meta = dict(ck.meta)
    meta["_path"] = str(path)
    return model, meta
