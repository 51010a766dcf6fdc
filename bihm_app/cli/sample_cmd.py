"""`bihm sample`, `bihm inpaint`, `bihm layers`: pictures from p* in the terminal and as PNG/GIF.

Parsing and rendering only: the pictures, their names and defaults come from ``runner/pictures.py``
(:class:`SamplingConfig`), the model from ``runner/models.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import Threads, apply_threads, cli_errors, out, progress_bar, runs_root
from bihm_app.runner.budget import check_sampling
from bihm_app.runner.outputs import check_output
from bihm_app.runner.pictures import INPAINTING, SAMPLING

RunArg = Annotated[Optional[str], typer.Argument(help="Run name, run folder or checkpoint file (or use --fresh).")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Use a freshly initialised model instead of a run.")]
FreshLayers = Annotated[str, typer.Option("--layers", help="Layers of the --fresh model.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data set (default: the run's; bmnist for --fresh).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")]
Mode = Annotated[str, typer.Option("--mode", help="Terminal picture: auto, halfblock or braille.")]
Steps = Annotated[int, typer.Option(help="Gibbs sweeps.")]
Proposals = Annotated[int, typer.Option("-K", "--proposals", help="Proposals per layer update (or per sample for resample).")]
InnerK = Annotated[int, typer.Option("--inner-k", help="Inner samples for the p̃*(x) estimate of the x step.")]
Expected = Annotated[bool, typer.Option("--expected/--draw", help="Show Bernoulli means (crisper) or binary draws.")]
OutPng = Annotated[Optional[Path], typer.Option("--out", help="Write the picture as PNG.")]
Save = Annotated[Optional[Path], typer.Option("--save", help="Write the binary samples, their Bernoulli means, every layer's final "
                                              "state and the settings to FILE.npz or FILE.h5 (the suffix decides).")]  # fmt: skip
KeepCurrent = Annotated[
    bool,
    typer.Option("--keep-current/--fresh-proposals", help="Keep the current state among the K candidates "
                 "(iterated importance resampling: exactly p*-invariant for any K) or K fresh proposals as in Algorithm 2."),
]


def _model(run: str | None, fresh: bool, layers: str, data: str | None, device: str, seed: int, runs_dir):
    """(LoadedModel, data set) from a run or a fresh initialisation."""
    from bihm_app.data import check_compatible
    from bihm_app.errors import ConfigError
    from bihm_app.runner.models import dataset, fresh_model, load_model

    if fresh:
        lm = fresh_model(layers, data or "bmnist", device, seed)
        return lm, dataset(lm.data_name)
    if not run:
        raise ConfigError("give a run (name, folder or checkpoint file) or --fresh")
    lm = load_model(run, runs_root(runs_dir), device)
    ds = dataset(data or lm.data_name)
    check_compatible(ds, lm.model.sizes[0], f"checkpoint {lm.path}")
    return lm, ds


def _save(path: Path | None, pics, settings: dict, extra: dict | None = None) -> None:
    if path is not None:
        from bihm_app.runner.sample_files import save_pictures

        out.print(f"wrote {save_pictures(path, pics, settings, extra)}", highlight=False)


def _show(rows, ds, title: str, mode: str, out_path: Path | None) -> None:
    from bihm_app.render.grid import make_grid
    from bihm_app.render.png import save_png
    from bihm_app.render.terminal import BitmapImage

    grid = make_grid(rows, image_shape=ds.image_shape)
    out.print(BitmapImage(grid, mode=mode, title=title))
    if out_path is not None:
        out.print(f"wrote {save_png(grid, out_path, scale=4)}", highlight=False)


@cli_errors
def sample(
    run: RunArg = None,
    method: Annotated[str, typer.Option(help="gibbs (Algorithm 2), resample (importance resampling) or ancestral (p alone).")] = SAMPLING.method,
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 64,
    steps: Steps = SAMPLING.steps,
    k: Proposals = SAMPLING.K,
    inner_k: InnerK = SAMPLING.inner_K,
    expected: Expected = True,
    keep_current: KeepCurrent = SAMPLING.keep_current,
    out_path: OutPng = None,
    save: Save = None,
    fresh: Fresh = False,
    layers: FreshLayers = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = SAMPLING.seed,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Draw samples from p* (Gibbs, Algorithm 2), by importance resampling, or ancestrally from p."""
    from bihm_app.runner.pictures import sample_pictures
    from bihm_app.runner.sample_files import check_save_path, picture_settings

    cfg = replace(SAMPLING, method=method, steps=steps, K=k, inner_K=inner_k, keep_current=keep_current, seed=seed)
    save = check_save_path(save)
    out_path = check_output(out_path, "--out")
    lm, ds = _model(run, fresh, layers, data, device, seed, runs_dir)
    check_sampling(lm.model, n, cfg.K, cfg.inner_K, cfg.steps)
    apply_threads(threads, lm.model, n * cfg.K)
    with progress_bar() as prog:
        task = prog.add_task(f"{cfg.method}, K = {cfg.K}", total=cfg.steps if cfg.method == "gibbs" else None)
        pics = sample_pictures(lm.model, n, cfg, progress=lambda m: prog.advance(task, m))
    _show(pics.rows(expected), ds, pics.title + (" — means" if expected else ""), mode, out_path)
    _save(save, pics, picture_settings(lm, "sample", run, cfg, n=n))


@cli_errors
def inpaint(
    run: RunArg = None,
    mask: Annotated[str, typer.Option(help="Missing part: bottom, top, left, right, centre, random (half), random:FRACTION or a PNG file (white = missing).")] = "bottom",
    index: Annotated[Optional[str], typer.Option("--index", "--indices", help="Test image index or comma-separated indices (default: --n spread over the split).")] = None,
    n: Annotated[int, typer.Option("--n", help="Number of images when no --index is given.")] = 8,
    split: Annotated[str, typer.Option(help="Split to take the images from.")] = "test",
    steps: Steps = INPAINTING.steps,
    k: Proposals = INPAINTING.K,
    inner_k: InnerK = INPAINTING.inner_K,
    keep_current: KeepCurrent = INPAINTING.keep_current,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write original | masked | completion as PNG.")] = None,
    gif: Annotated[Optional[Path], typer.Option("--gif", help="Write the chain as an animated GIF.")] = None,
    save: Save = None,
    fresh: Fresh = False,
    layers: FreshLayers = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = INPAINTING.seed,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Complete partly hidden images with the Gibbs sampler, known pixels clamped (3.4)."""
    from bihm_app.errors import ConfigError
    from bihm_app.render.png import save_gif, save_png
    from bihm_app.render.terminal import BitmapImage
    from bihm_app.runner.pictures import chain_pictures, check_mask, inpaint_panel, missing_mask, pick_indices, pick_rows
    from bihm_app.runner.sample_files import check_save_path, inpaint_extra, picture_settings

    cfg = replace(INPAINTING, steps=steps, K=k, inner_K=inner_k, keep_current=keep_current, seed=seed)
    if cfg.steps < 1:
        raise ConfigError("--steps must be at least 1")
    mask = check_mask(mask, "--mask")  # before the model and the data are loaded
    save = check_save_path(save)
    out_path, gif = check_output(out_path, "--out"), check_output(gif, "--gif")
    lm, ds = _model(run, fresh, layers, data, device, seed, runs_dir)
    idx = pick_indices(ds, split, index, n)
    check_sampling(lm.model, len(idx), cfg.K, cfg.inner_K, cfg.steps, "--n" if index is None else "--index")
    idx, x_true = pick_rows(ds, split, idx)
    apply_threads(threads, lm.model, len(idx) * cfg.K)
    missing = missing_mask(mask, lm.model.sizes[0], ds.image_shape, seed)
    with progress_bar() as prog:
        task = prog.add_task(f"inpainting, K = {cfg.K}", total=cfg.steps)
        picture, res, score, tinted_grid = inpaint_panel(lm.model, x_true, missing, ds.image_shape, cfg,
                                                         record_trajectory=gif is not None, progress=lambda m: prog.advance(task, m))  # fmt: skip
    out.print(BitmapImage(picture, mode=mode, title=f"original | masked ({mask}) | completion after {cfg.steps} sweeps (means)"))
    se = float(score.log_lik.std() / math.sqrt(len(idx))) if len(idx) > 1 else 0.0
    out.print(f"missing pixels per image: {int(missing.sum())}   log-likelihood of the true missing pixels: "
              f"{float(score.log_lik.mean()):.2f} ± {se:.2f} nats   pixel error: {100 * float(score.error_rate.mean()):.1f} %",
              highlight=False)  # fmt: skip
    if out_path is not None:
        out.print(f"wrote {save_png(picture, out_path)}", highlight=False)
    if gif is not None:
        frames = [tinted_grid(m) for m in res.trajectory]
        out.print(f"wrote {save_gif(frames, gif, duration_ms=120)} ({len(frames)} frames)", highlight=False)
    _save(save, chain_pictures(res, f"inpainting ({mask}) after {cfg.steps} sweeps"),
          picture_settings(lm, "inpaint", run, cfg, mask=mask, split=split, indices=idx),
          inpaint_extra(x_true, missing, idx))  # fmt: skip


@cli_errors
def layers(
    run: RunArg = None,
    layer: Annotated[int, typer.Option("--layer", help="The latent layer (1 = lowest) whose one state is held fixed.")] = 1,
    n: Annotated[int, typer.Option("--n", help="Completions below the layer.")] = 64,
    expected: Expected = True,
    out_path: OutPng = None,
    save: Save = None,
    fresh: Fresh = False,
    fresh_layers: FreshLayers = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = SAMPLING.seed,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Layer-wise generation (thesis figures 4.1–4.3): one top-down sample, many completions below --layer."""
    from bihm_app.runner.pictures import layer_pictures
    from bihm_app.runner.sample_files import check_save_path, picture_settings

    save = check_save_path(save)
    out_path = check_output(out_path, "--out")
    lm, ds = _model(run, fresh, fresh_layers, data, device, seed, runs_dir)
    check_sampling(lm.model, n)
    apply_threads(threads, lm.model, n)
    pics = layer_pictures(lm.model, layer, n, seed)
    _show(pics.rows(expected), ds, pics.title, mode, out_path)
    _save(save, pics, picture_settings(lm, "layers", run, None, layer=layer, n=n, seed=seed))
