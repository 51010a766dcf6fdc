"""`bihm eval` and `bihm logz`: likelihood estimates with standard errors.

Under torchrun both share their samples across the ranks (runner/sharding.py) for models without a
label layer; rank 0 writes the cache and prints.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import TaskBars, Threads, apply_threads, as_count, cli_errors, err, out, progress_bar, runs_root
from bihm_app.errors import CheckpointError, ConfigError
from bihm_app.runner.outputs import check_output


@cli_errors
def eval_(
    run: Annotated[str, typer.Argument(help="Run name, run folder or checkpoint file.")],
    split: Annotated[str, typer.Option(help="Data split to evaluate.")] = "test",
    k: Annotated[Optional[str], typer.Option("-K", "--samples", help="Comma-separated numbers of importance samples (default 1,10,100,1000; with --k-sweep 1,3,10,…,10000).")] = None,
    k_sweep: Annotated[bool, typer.Option("--k-sweep", help="The K-sensitivity table and a PNG plot of log p̃*(x) and log p(x) against K.")] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG of the --k-sweep (default: k-sweep-<split>.png in the run folder).")] = None,
    z_samples: Annotated[float, typer.Option("--z-samples", help="Samples for 2 log Z (0: skip); the estimate printed is the one from exactly this many (a cached one with more samples is shown beside it).")] = 1e6,
    z_inner: Annotated[int, typer.Option("--z-inner", help="Inner samples per outer sample for 2 log Z.")] = 1,
    n: Annotated[int, typer.Option("--n", help="Evaluate N points drawn at random from the split (seeded by --seed; 0: all).")] = 0,
    batch: Annotated[int, typer.Option(help="Data points per batch.")] = 100,
    which: Annotated[str, typer.Option(help="best or latest checkpoint of a run.")] = "best",
    reuse: Annotated[bool, typer.Option("--reuse", help="Take estimates already cached in the run folder for this checkpoint instead of recomputing them (2 log Z: the cached one with the most samples, at least --z-samples; marked 'cached').")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")] = None,
    threads: Threads = "auto",
) -> None:
    """Estimate log p(x), log p̃*(x), 2 log Z, log p*(x) and the ESS on a split, each with its standard error.

    Results of a run's checkpoint are also merged into eval-<split>.json in the run folder, where
    `bihm report`, `bihm repro` and the dashboard read them.
    """
    from bihm_app.runner.evaluation import DEFAULT_SWEEP, EvalPlan, evaluate_target, parse_k_list
    from bihm_app.runner.sharding import finish_sharding, init_sharding
    from bihm_app.runner.threads import check_option

    ks = parse_k_list(k, DEFAULT_SWEEP if k_sweep else (1, 10, 100, 1000), "-K")
    threads, plot = check_option(threads), check_output(plot, "--plot")
    z_samples = as_count(z_samples, "--z-samples")
    if _has_labels(run, runs_dir, which):  # a semi-supervised run: classification error too
        if batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {batch}")
        if int(os.environ.get("RANK", "0")) != 0:
            return  # not sharded: under torchrun rank 0 evaluates a labelled model alone
        from bihm_app.runner.models import load_model

        lm = load_model(run, runs_root(runs_dir), device, which, labels_ok=True)
        apply_threads(threads, lm.model, 1024)
        from bihm_app.cli.eval_semisup import eval_semisup

        return eval_semisup(lm.model, lm.meta, split, ks, z_samples, z_inner, n, batch, seed, as_json)
    if n < 0:
        raise ConfigError(f"--n must be at least 0, got {n}")
    if z_samples and z_samples < 2:
        raise ConfigError(f"--z-samples must be 0 or at least 2, got {z_samples}")
    plan = EvalPlan([(K, n) for K in ks], z_samples, z_inner, split, seed, batch)
    rank, world = init_sharding(device)
    ok = False
    try:
        with TaskBars(rank) as bars:
            res = evaluate_target(run, runs_root(runs_dir), plan, which=which, device=device, use_cache=reuse, progress=bars,
                                  threads=threads, rank=rank, world=world)  # fmt: skip
        ok = True
    finally:
        finish_sharding(world, ok)
    if rank != 0:
        return  # under torchrun rank 0 reports
    _show_eval(res, split, k_sweep, plot, as_json)


def _show_eval(res, split: str, k_sweep: bool, plot: Optional[Path], as_json: bool) -> None:
    """The results of `bihm eval` on rank 0: JSON, or the table, 2 log Z, log p*(x) and the files written."""
    from bihm_app.runner.evaluation import log_pstar

    results, z = res.estimates(), res.z()
    png = _k_sweep_png(res, results, split, plot) if k_sweep else None
    star = log_pstar(results[-1], z)
    bad = _nonfinite([(f"{name} at K = {r['K']}", r[key], r[f"{key}_se"]) for r in results
                      for name, key in (("log p(x)", "log_p"), ("log p̃*(x)", "log_ptilde"))]  # fmt: skip
                     + ([("2 log Z", z["mean"], z["se"])] if z is not None else []))
    if res.cache_problem is not None:  # the results stand; only the cache is missing (exit 0)
        err.print(f"[yellow]warning:[/] results not cached: {res.cache_problem}", highlight=False, soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(_payload(res, results, z, star, split, png)))
        _refuse_nonfinite(bad, res.checkpoint)
        return
    for table in _estimates_table(res, results, z if k_sweep else None, split):
        out.print(table)
    if z is not None:
        out.print(f"2 log Z = {z['mean']:.3f} ± {z['se']:.3f}   ({_z_origin(res, z)})", highlight=False)
        out.print(f"log p*(x) = log p̃*(x) − 2 log Z = [bold]{star[0]:.2f} ± {star[1]:.2f}[/]   (K = {results[-1]['K']})", highlight=False)
        more = res.z_more_precise()
        if more is not None:
            out.print(f"[dim]also cached: 2 log Z = {more['mean']:.3f} ± {more['se']:.3f} "
                      f"({more['samples']:,} samples; --reuse takes it)[/]", highlight=False)  # fmt: skip
    if png is not None:
        out.print(f"wrote {png}", highlight=False)
    if res.written is not None:
        out.print(f"[dim]results cached in {res.written}[/]", highlight=False)
    _refuse_nonfinite(bad, res.checkpoint)


def _z_origin(res, z: dict) -> str:
    """'100,000 samples, inner 1' for a 2 log Z computed now; '…, cached' for one --reuse took."""
    return f"{z['samples']:,} samples, inner {z['inner']}" + (", cached" if res.z_cached else "")


def _nonfinite(values: list[tuple[str, float, float]]) -> list[str]:
    """Names of the (name, mean, standard error) estimates that came out NaN/inf."""
    return [name for name, mean, se in values if mean is None or se is None or not (math.isfinite(mean) and math.isfinite(se))]


def _refuse_nonfinite(bad: list[str], path) -> None:
    """Exit 1 with one line when an estimate is not finite (the model's values overflow)."""
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise CheckpointError(f"checkpoint {path}: non-finite estimates ({', '.join(bad[:3])}{more}): the model's values overflow")


def _k_sweep_png(res, results: list[dict], split: str, plot: Optional[Path]) -> Path:
    from bihm_app.runner.evaluation import save_k_sweep_png

    png = plot or (res.checkpoint.parent if res.written else Path.cwd()) / f"k-sweep-{split}.png"
    title = f"{res.cache.data} / {split}, {results[-1]['n']:,} points: {res.checkpoint.parent.name}/{res.checkpoint.name}"
    try:
        return save_k_sweep_png({res.checkpoint.parent.name: results}, png, title)
    except OSError as exc:
        raise ConfigError(f"--plot {png}: cannot write ({exc})") from None


def _payload(res, results: list[dict], z, star, split: str, png) -> dict:
    """What `bihm eval --json` prints."""
    return {
        "checkpoint": str(res.checkpoint), "data": res.cache.data, "split": split, "n": results[-1]["n"],
        "estimates": [{k_: v for k_, v in e.items() if k_ not in ("seed", "seconds")} for e in results],
        "log_z2": None if z is None else {"mean": z["mean"], "se": z["se"], "samples": z["samples"], "inner": z["inner"],
                                          "cached": res.z_cached},
        "log_z2_cached_more_samples": (None if (more := res.z_more_precise()) is None else
                                       {"mean": more["mean"], "se": more["se"], "samples": more["samples"], "inner": more["inner"]}),
        "log_pstar": None if star is None else {"mean": star[0], "se": star[1], "K": results[-1]["K"]},
        "cache": None if res.written is None else str(res.written),
        "plot": None if png is None else str(png),
    }  # fmt: skip


def _estimates_table(res, results: list[dict], z_column, split: str) -> list:
    """K, log p(x), log p̃*(x), ESS (and log p*(x) when ``z_column`` is the 2 log Z to use), fitted to the width."""
    from bihm_app.render.fit_table import Column, fit_table
    from bihm_app.runner.evaluation import log_pstar

    columns = [Column("K", "right"), Column("log p(x)", "right"), Column("log p̃*(x)", "right"), Column("ESS", "right", drop=1)]
    columns += [Column("log p*(x)", "right")] if z_column is not None else []
    rows = []
    for r in results:
        cells = [str(r["K"]), f"{r['log_p']:.2f} ± {r['log_p_se']:.2f}", f"{r['log_ptilde']:.2f} ± {r['log_ptilde_se']:.2f}",
                 f"{100 * r['ess']:.1f} %"]  # fmt: skip
        if z_column is not None:
            m, se = log_pstar(r, z_column)
            cells.append(f"{m:.2f} ± {se:.2f}")
        rows.append(cells)
    title = f"{res.cache.data} / {split} — {results[-1]['n']} points — {res.checkpoint.name}"
    return fit_table(columns, rows, out.width, title=title)


def _has_labels(run: str, runs_dir, which: str) -> bool:
    """Whether the checkpoint behind ``run`` has a label layer (reads only its meta)."""
    from bihm_app.store.checkpoint import read_meta
    from bihm_app.store.runs import resolve_checkpoint

    meta = read_meta(resolve_checkpoint(run, runs_root(runs_dir), which=which))
    return (meta.get("config", {}).get("model") or {}).get("labels") is not None


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
    threads: Threads = "auto",
) -> None:
    """Estimate 2 log Z (eq. 3.11) with its standard error."""
    from bihm_app.runner.evaluation import check_z_budget, estimate_z2, z2_progress_total
    from bihm_app.runner.models import load_model
    from bihm_app.runner.sharding import finish_sharding, init_sharding

    samples = as_count(samples, "--samples", minimum=2)
    if inner < 1:
        raise ConfigError("--inner must be at least 1")
    rank, world = init_sharding(device)
    ok = False
    try:
        lm = load_model(run, runs_root(runs_dir), device, which, labels_ok=True)
        check_z_budget(lm.model, samples, inner)
        apply_threads(threads, lm.model, 1024)
        with progress_bar(rank) as prog:
            task = prog.add_task("2 log Z", total=z2_progress_total(lm.model, int(samples), rank, world))
            z = estimate_z2(lm.model, int(samples), inner, seed, lambda m: prog.advance(task, m), rank, world)
        ok = True
    finally:
        finish_sharding(world, ok)
    if rank != 0:
        return
    if as_json:
        out.print_json(json.dumps({"checkpoint": str(lm.path), "log_z2": z.mean, "se": z.se, "samples": int(samples), "inner": inner}))
    else:
        z2 = math.exp(z.mean) if math.isfinite(z.mean) and z.mean < 700 else math.inf
        out.print(f"2 log Z = [bold]{z.mean:.4f} ± {z.se:.4f}[/]   (Z² = {z2:.4g}; {int(samples):,} samples, inner {inner})", highlight=False)
    _refuse_nonfinite(_nonfinite([("2 log Z", z.mean, z.se)]), lm.path)
