"""`bihm report RUN [RUN…] --out DIR`: a self-contained markdown report with PNG figures (logic in runner.report)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import TaskBars, cli_errors, out, runs_root


@cli_errors
def report(
    runs: Annotated[list[str], typer.Argument(help="Run names or run folders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.md and its figures.")] = Path("bihm-report"),
    split: Annotated[str, typer.Option(help="Split of the cached evaluation and of a K sweep computed here.")] = "test",
    sweep: Annotated[str, typer.Option("--k-sweep", help="K values of a sweep computed when none is cached.")] = "1,3,10,30,100,300,1000",
    sweep_points: Annotated[int, typer.Option("--sweep-points", help="Test points for a sweep computed here (0: all).")] = 1000,
    z_samples: Annotated[float, typer.Option("--z-samples", help="2 log Z samples: computed unless a cached estimate has at least this many (the report shows the cached one with the most samples, and how many).")] = 1e5,
    compute: Annotated[bool, typer.Option("--compute/--cached-only", help="Compute a missing K sweep and 2 log Z (cached in the run folder), or show only what is cached.")] = True,
    pictures: Annotated[bool, typer.Option("--pictures/--no-pictures", help="Gibbs samples, inpainting and layer-wise pictures.")] = True,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")] = None,
) -> None:
    """Write a report of one or more runs: configuration, training curves, test estimates, the
    K-sensitivity plot, ESS, Gibbs samples, inpainting and layer-wise pictures."""
    from bihm_app.runner.evaluation import parse_k_list
    from bihm_app.runner.outputs import check_output_dir
    from bihm_app.runner.report import ReportOptions, report_figures, write_report

    check_output_dir(out_dir, "--out")

    opts = ReportOptions(split=split, sweep=tuple(parse_k_list(sweep, what="--k-sweep")), sweep_points=sweep_points,
                         z_samples=int(z_samples), compute=compute, pictures=pictures, seed=seed, device=device)  # fmt: skip
    command = "bihm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv and sys.argv[0].endswith("bihm") else ""
    with TaskBars() as bars:
        md = write_report(runs_root(runs_dir), runs, out_dir, opts, bars, command)
    figures = report_figures(md)
    out.print(f"wrote {md} and {len(figures)} figures", highlight=False)
