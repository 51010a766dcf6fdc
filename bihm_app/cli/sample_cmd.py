"""`bihm sample`, `bihm inpaint`, `bihm layers`: pictures from p* in the terminal and as PNG/GIF."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from bihm_app.cli.common import Threads, apply_threads, cli_errors, load_model, out, progress_bar
from bihm_app.errors import ConfigError, DataError

RunArg = Annotated[Optional[str], typer.Argument(help="Run name, run folder or checkpoint file (or use --fresh).")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Use a freshly initialised model instead of a run.")]
FreshLayers = Annotated[str, typer.Option("--layers", help="Layers of the --fresh model.")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data set (default: the run's; bmnist for --fresh).")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
RunsDir = Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder.")]
Mode = Annotated[str, typer.Option("--mode", help="Terminal picture: auto, halfblock or braille.")]
KeepCurrent = Annotated[
    bool,
    typer.Option("--keep-current/--fresh-proposals", help="Keep the current state among the K candidates "
                 "(iterated importance resampling: exactly p*-invariant for any K) or K fresh proposals as in Algorithm 2."),
]


def _model(run: str | None, fresh: bool, layers: str, data: str | None, device: str, seed: int, runs_dir):
    """(model, data set) from a run or a fresh initialisation."""
    from bihm_app.data import check_compatible, load_dataset
    from bihm_app.engine.model import BiHM, ModelConfig, make_generator, parse_layers, resolve_device

    if fresh:
        ds = load_dataset(data or "bmnist")
        from bihm_app.runner.budget import check_model_fits

        try:
            sizes, dev = parse_layers(layers), resolve_device(device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        check_model_fits(ModelConfig(ds.dim, sizes), dev)  # before allocating it
        return BiHM(ModelConfig(ds.dim, sizes), make_generator(seed)).to(dev).eval(), ds
    if not run:
        raise ConfigError("give a run (name, folder or checkpoint file) or --fresh")
    model, meta = load_model(run, runs_dir, device)
    ds = load_dataset(data or meta["data"]["name"])
    check_compatible(ds, model.sizes[0], f"checkpoint {meta['_path']}")
    return model, ds


def _show(grid, title: str, mode: str, out_path: Path | None, scale: int = 4) -> None:
    from bihm_app.render.png import save_png
    from bihm_app.render.terminal import BitmapImage

    out.print(BitmapImage(grid, mode=mode, title=title))
    if out_path is not None:
        out.print(f"wrote {save_png(grid, out_path, scale=scale)}", highlight=False)


def _grid(rows, ds, ncol=None):
    from bihm_app.render.grid import make_grid

    return make_grid(rows.detach().cpu().numpy() if hasattr(rows, "detach") else rows, ncol=ncol, image_shape=ds.image_shape)


@cli_errors
def sample(
    run: RunArg = None,
    method: Annotated[str, typer.Option(help="gibbs (Algorithm 2), resample (importance resampling) or ancestral (p alone).")] = "gibbs",
    n: Annotated[int, typer.Option("--n", help="Number of samples.")] = 64,
    steps: Annotated[int, typer.Option(help="Gibbs sweeps.")] = 50,
    k: Annotated[int, typer.Option("-K", "--proposals", help="Proposals per layer update (or per sample for resample).")] = 100,
    inner_k: Annotated[int, typer.Option("--inner-k", help="Inner samples for the p̃*(x) estimate of the x step.")] = 10,
    expected: Annotated[bool, typer.Option("--expected/--draw", help="Show Bernoulli means (crisper) or binary draws.")] = True,
    keep_current: KeepCurrent = False,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the grid as PNG.")] = None,
    fresh: Fresh = False,
    layers: FreshLayers = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = 0,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Draw samples from p* (Gibbs, Algorithm 2), by importance resampling, or ancestrally from p."""
    from bihm_app.engine import gibbs
    from bihm_app.engine.model import make_generator

    if method not in ("gibbs", "resample", "ancestral"):
        raise ConfigError(f"unknown method {method!r} (use gibbs, resample or ancestral)")
    if n < 1 or k < 1 or steps < 0 or inner_k < 1:
        raise ConfigError("--n, -K and --inner-k must be at least 1 and --steps at least 0")
    if keep_current and method == "gibbs" and k < 2:
        raise ConfigError("--keep-current needs -K of at least 2")
    model, ds = _model(run, fresh, layers, data, device, seed, runs_dir)
    apply_threads(threads, model, n * k)
    gen = make_generator(seed, model.device)
    with progress_bar() as prog:
        if method == "gibbs":
            task = prog.add_task(f"Gibbs, K = {k}", total=steps)
            res = gibbs.run_gibbs(model, n, steps, k, gen, inner_K=inner_k, keep_current=keep_current,
                                  progress=lambda m: prog.advance(task, m))  # fmt: skip
            x, means = res.x, res.means
        elif method == "resample":
            prog.add_task(f"importance resampling, {k} proposals", total=None)
            x, means = gibbs.sample_importance_resampled(model, n, k, gen, inner_K=inner_k)
        else:
            x, means = gibbs.sample_ancestral(model, n, gen)
    what = {"gibbs": f"Gibbs samples of p* ({steps} sweeps, K = {k})", "resample": f"importance-resampled p* ({k} proposals)",
            "ancestral": "ancestral samples of p"}[method]  # fmt: skip
    _show(_grid(means if expected else x, ds), what + (" — means" if expected else ""), mode, out_path)


@cli_errors
def inpaint(
    run: RunArg = None,
    mask: Annotated[str, typer.Option(help="Missing part: bottom, top, left, right, centre, random:FRACTION or a PNG file (white = missing).")] = "bottom",
    index: Annotated[Optional[str], typer.Option("--index", "--indices", help="Test image index or comma-separated indices (default: --n spread over the split).")] = None,
    n: Annotated[int, typer.Option("--n", help="Number of images when no --index is given.")] = 8,
    split: Annotated[str, typer.Option(help="Split to take the images from.")] = "test",
    steps: Annotated[int, typer.Option(help="Gibbs sweeps.")] = 100,
    k: Annotated[int, typer.Option("-K", "--proposals", help="Proposals per layer update.")] = 100,
    inner_k: Annotated[int, typer.Option("--inner-k", help="Inner samples for the p̃*(x) estimate.")] = 10,
    keep_current: KeepCurrent = False,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write original | masked | completion as PNG.")] = None,
    gif: Annotated[Optional[Path], typer.Option("--gif", help="Write the chain as an animated GIF.")] = None,
    fresh: Fresh = False,
    layers: FreshLayers = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = 0,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Complete partly hidden images with the Gibbs sampler, known pixels clamped (3.4)."""
    import numpy as np
    import torch

    from bihm_app.engine.masks import mask_from_spec
    from bihm_app.engine.model import make_generator
    from bihm_app.render.png import save_gif, save_png
    from bihm_app.render.terminal import BitmapImage
    from bihm_app.runner.pictures import inpaint_panel

    if steps < 1 or k < 1 or n < 1:
        raise ConfigError("--steps, -K and --n must be at least 1")
    if keep_current and k < 2:
        raise ConfigError("--keep-current needs -K of at least 2")
    model, ds = _model(run, fresh, layers, data, device, seed, runs_dir)
    apply_threads(threads, model, n * k)
    D = model.sizes[0]
    if split not in ds.split_names:
        raise ConfigError(f"data set {ds.name} has no split {split!r} (splits: {', '.join(ds.split_names)})")
    X = ds.get(split)
    if index is None:
        idx = np.linspace(0, len(X) - 1, n).astype(int).tolist()  # spread: bmnist's test split is sorted by digit
    else:
        try:
            idx = [int(s) for s in index.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--index {index!r} is not a comma-separated list of integers") from None
    bad = [i for i in idx if not 0 <= i < len(X)]
    if bad or not idx:
        raise ConfigError(f"image index {bad[0] if bad else index} out of range: {ds.name}/{split} has {len(X)} images (0 … {len(X) - 1})")
    missing = _mask(mask, D, ds.image_shape, seed, mask_from_spec)
    x_true = torch.as_tensor(np.asarray(X[idx], dtype=np.float32), device=model.device)
    gen = make_generator(seed, model.device)
    with progress_bar() as prog:
        task = prog.add_task(f"inpainting, K = {k}", total=steps)
        picture, res, score, tinted_grid = inpaint_panel(
            model, x_true, missing, ds.image_shape, steps, k, gen, inner_K=inner_k, keep_current=keep_current,
            record_trajectory=gif is not None, progress=lambda m: prog.advance(task, m),
        )  # fmt: skip
    out.print(BitmapImage(picture, mode=mode, title=f"original | masked ({mask}) | completion after {steps} sweeps (means)"))
    n_miss = int(missing.sum())
    out.print(
        f"missing pixels per image: {n_miss}   log-likelihood of the true missing pixels: "
        f"{float(score.log_lik.mean()):.2f} ± {float(score.log_lik.std() / math.sqrt(len(idx))) if len(idx) > 1 else 0:.2f} nats"
        f"   pixel error: {100 * float(score.error_rate.mean()):.1f} %",
        highlight=False,
    )
    if out_path is not None:
        out.print(f"wrote {save_png(picture, out_path)}", highlight=False)
    if gif is not None:
        frames = [tinted_grid(m) for m in res.trajectory]
        out.print(f"wrote {save_gif(frames, gif, duration_ms=120)} ({len(frames)} frames)", highlight=False)


def _mask(spec: str, D: int, image_shape, seed: int, mask_from_spec):
    """The missing-pixel mask (D,) bool from a spec or a PNG file (white = missing)."""
    import numpy as np
    import torch

    p = Path(spec)
    if p.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        if not p.is_file():
            raise DataError(f"mask {spec}: no such file")
        try:
            a = np.asarray(Image.open(p).convert("L"), dtype=np.float64) / 255.0
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"mask {spec}: not a readable PNG ({exc})") from None
        want = image_shape or (1, D)
        if a.shape != tuple(want):
            raise DataError(f"mask {spec}: {a.shape[0]}x{a.shape[1]} pixels, the data needs {want[0]}x{want[1]}")
        return torch.as_tensor(a.reshape(-1) > 0.5)
    try:
        return mask_from_spec(spec, D, image_shape, seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@cli_errors
def layers(
    run: RunArg = None,
    layer: Annotated[int, typer.Option("--layer", help="The latent layer (1 = lowest) whose one state is held fixed.")] = 1,
    n: Annotated[int, typer.Option("--n", help="Completions below the layer.")] = 64,
    expected: Annotated[bool, typer.Option("--expected/--draw", help="Bernoulli means or binary draws.")] = True,
    out_path: Annotated[Optional[Path], typer.Option("--out", help="Write the grid as PNG.")] = None,
    fresh: Fresh = False,
    fresh_layers: Annotated[str, typer.Option("--layers", help="Layers of the --fresh model.")] = "200,200",
    data: DataOpt = None,
    device: Device = "auto",
    seed: Seed = 0,
    mode: Mode = "auto",
    runs_dir: RunsDir = None,
    threads: Threads = "auto",
) -> None:
    """Layer-wise generation (thesis figures 4.1–4.3): one top-down sample, many completions below --layer."""
    from bihm_app.engine import gibbs
    from bihm_app.engine.model import make_generator

    if n < 1:
        raise ConfigError("--n must be at least 1")
    model, ds = _model(run, fresh, fresh_layers, data, device, seed, runs_dir)
    apply_threads(threads, model, n)
    if not 1 <= layer <= model.n_layers:
        raise ConfigError(f"layer {layer} does not exist: this model has latent layers 1 … {model.n_layers}")
    res = gibbs.layerwise_samples(model, layer, n, make_generator(seed, model.device))
    title = f"{n} completions x, h_1 … h_{layer - 1} ~ p(· | h_{layer}) of one top-down sample (layer {layer} of {model.n_layers})"
    _show(_grid(res.means if expected else res.x, ds), title, mode, out_path)
