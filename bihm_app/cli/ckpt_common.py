"""Options and small formatters shared by the `bihm ckpt` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import runs_root
from bihm_app.runner.checkpoints import finite

RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $BIHM_HOME/runs).")]
Latest = Annotated[bool, typer.Option("--latest", help="For a run: the latest checkpoint instead of best.h5.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def fmt_value(v, se=None, digits: int = 2, key: str = "") -> str:
    """A metric as text: ``v ± se``; the ESS (``key="ess"``, a fraction of K) in percent, as
    everywhere else (eval, the report, the dashboard)."""
    if not finite(v):
        return "—"
    if key == "ess":
        return f"{100 * v:.1f} %" + (f" ± {100 * se:.1f}" if finite(se) else "")
    text = f"{v:,.{digits}f}"
    if finite(se):
        text += f" ± {se:.{digits}f}"
    return text


def show_value(v) -> str:
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return "—" if v is None else str(v)


def resolve(target: str, runs_dir: Optional[Path], latest: bool) -> Path:
    from bihm_app.store.runs import resolve_checkpoint

    return resolve_checkpoint(target, runs_root(runs_dir), which="latest" if latest else "best")
