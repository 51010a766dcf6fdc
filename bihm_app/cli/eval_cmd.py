"""`bihm eval` and `bihm logz`: likelihood estimates with standard errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from bihm_app.cli.common import cli_errors, load_model, out, parse_int_list, progress_bar
from bihm_app.errors import ConfigError


def _z(model, n: int, inner: int, seed: int, prog):
    from bihm_app.engine.estimators import estimate_log_z2
    from bihm_app.engine.model import make_generator

    task = prog.add_task("2 log Z", total=n)
    return estimate_log_z2(
        model, n, make_generator(seed + 1, model.device), n_inner=inner, chunk=20_000,
        progress=lambda m: prog.advance(task, m),
    )  # fmt: skip


@cli_errors
def eval_(
    run: Annotated[str, typer.Argument(help="Run name, run folder or checkpoint file.")],
    split: Annotated[str, typer.Option(help="Data split to evaluate.")] = "test",
    k: Annotated[str, typer.Option("-K", "--samples", help="Comma-separated numbers of importance samples.")] = "1,10,100,1000",
    z_samples: Annotated[float, typer.Option("--z-samples", help="Samples for 2 log Z (0: skip).")] = 1e6,
    z_inner: Annotated[int, typer.Option("--z-inner", help="Inner samples per outer sample for 2 log Z.")] = 1,
    n: Annotated[int, typer.Option("--n", help="Evaluate only the first N points (0: all).")] = 0,
    batch: Annotated[int, typer.Option(help="Data points per batch.")] = 100,
    which: Annotated[str, typer.Option(help="best or latest checkpoint of a run.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")] = None,
) -> None:
    """Estimate log p(x), log p̃*(x), 2 log Z, log p*(x) and the ESS on a split, each with its standard error."""
    from bihm_app.data import as_tensor, check_compatible, load_dataset
    from bihm_app.engine.estimators import evaluate, log_p_star
    from bihm_app.engine.model import make_generator

    ks = parse_int_list(k, "-K")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    model, meta = load_model(run, runs_dir, device, which)
    ds = load_dataset(meta["data"]["name"])
    check_compatible(ds, model.sizes[0], f"checkpoint {meta['_path']}")
    if split not in ds.split_names:
        raise ConfigError(f"data set {ds.name} has no split {split!r} (splits: {', '.join(ds.split_names)})")
    x = as_tensor(ds, split, device=model.device)
    if n:
        x = x[:n]
    results, z = [], None
    with progress_bar() as prog:
        for K in ks:
            task = prog.add_task(f"K = {K}", total=x.shape[0])
            est = evaluate(model, x.split(batch), K, make_generator(seed * 1009 + K, model.device),
                           progress=lambda m, t=task: prog.advance(t, m))  # fmt: skip
            results.append(est)
        if z_samples >= 2:
            z = _z(model, int(z_samples), z_inner, seed, prog)
    best = results[-1]
    star = log_p_star(best.log_ptilde, z) if z is not None else None
    payload = {
        "checkpoint": meta["_path"], "data": ds.name, "split": split, "n": int(x.shape[0]),
        "estimates": [r.to_dict() for r in results],
        "log_z2": None if z is None else {"mean": z.mean, "se": z.se, "samples": int(z_samples), "inner": z_inner},
        "log_pstar": None if star is None else {"mean": star.mean, "se": star.se, "K": best.K},
    }  # fmt: skip
    if as_json:
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{ds.name} / {split} — {x.shape[0]} points — {Path(meta['_path']).name}", title_justify="left")
    for col in ("K", "log p(x)", "log p̃*(x)", "ESS"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r.K), f"{r.log_p.mean:.2f} ± {r.log_p.se:.2f}", f"{r.log_ptilde.mean:.2f} ± {r.log_ptilde.se:.2f}",
                      f"{100 * r.ess.mean:.1f} %")  # fmt: skip
    out.print(table)
    if z is not None:
        out.print(f"2 log Z = {z.mean:.3f} ± {z.se:.3f}   ({int(z_samples):,} samples, inner {z_inner})", highlight=False)
        out.print(f"log p*(x) = log p̃*(x) − 2 log Z = [bold]{star.mean:.2f} ± {star.se:.2f}[/]   (K = {best.K})", highlight=False)


@cli_errors
def logz(
    run: Annotated[str, typer.Argument(help="Run name, run folder or checkpoint file.")],
    samples: Annotated[float, typer.Option(help="Outer samples (x, h) ~ p.")] = 1e7,
    inner: Annotated[int, typer.Option(help="Inner samples h' ~ q(h|x) per outer sample.")] = 1,
    which: Annotated[str, typer.Option(help="best or latest checkpoint of a run.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")] = None,
) -> None:
    """Estimate 2 log Z (eq. 3.11) with its standard error."""
    if samples < 2 or inner < 1:
        raise ConfigError("--samples must be at least 2 and --inner at least 1")
    model, meta = load_model(run, runs_dir, device, which)
    with progress_bar() as prog:
        z = _z(model, int(samples), inner, seed, prog)
    if as_json:
        out.print_json(json.dumps({"checkpoint": meta["_path"], "log_z2": z.mean, "se": z.se, "samples": int(samples), "inner": inner}))
    else:
        out.print(f"2 log Z = [bold]{z.mean:.4f} ± {z.se:.4f}[/]   (Z² = {math.exp(z.mean):.4g}; {int(samples):,} samples, inner {inner})", highlight=False)
