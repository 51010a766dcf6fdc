"""``bihm report``: a self-contained markdown report of one or more runs, with PNG figures.

For every run: the configuration, how training ended, the training curves (per-update bound;
validation log p̃*(x) and log p(x), 2 log Z and the ESS per epoch, with ± 2 SE bands), the cached
test-set estimates, the K-sensitivity plot of log p̃*(x) and log p(x) (from ``eval-<split>.json``;
computed and cached when missing, unless ``compute`` is off), Gibbs samples of p*, inpainting and
layer-wise pictures. With several runs, a summary table and overlaid validation and K curves.

Layout of ``out_dir``::

    report.md
    compare-valid.png, compare-k-sweep.png      (two or more runs)
    <run>/training.png, validation.png, log-z.png, ess.png, k-sweep.png,
          samples.png, inpaint.png, layers.png
"""

from __future__ import annotations

import math
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bihm_app import __version__
from bihm_app.errors import BihmError, ConfigError, DiskFull, RunError
from bihm_app.runner.compare import at_best_epoch, best_by
from bihm_app.runner.formats import flatten
from bihm_app.runner.subsets import describe_points
from bihm_app.runner.evaluation import (
    DEFAULT_SWEEP, EvalPlan, ProgressFactory, cache_problem, evaluate_target, no_progress, run_cache,
)
from bihm_app.runner.tables import Table, duration, md_escape, pm, to_markdown
from bihm_app.store.atomic import fsync_dir

MAX_CURVE_POINTS = 1000


@dataclass
class ReportOptions:
    split: str = "test"
    sweep: tuple[int, ...] = tuple(k for k in DEFAULT_SWEEP if k <= 1000)
    sweep_points: int = 1000  # test points for a sweep computed here (0: all)
    z_samples: int = 100_000  # 2 log Z computed here unless one with at least this many samples is cached
    compute: bool = True  # compute a missing K sweep and 2 log Z (else: only what is cached)
    pictures: bool = True
    n_pictures: int = 32
    gibbs_steps: int = 20
    K_pictures: int = 100
    seed: int = 0
    device: str = "auto"


@dataclass
class RunReport:
    """What the report shows of one run (also what the dashboard's compare screen needs)."""

    name: str
    path: Path
    config: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    best_valid: float | None = None  # validation log p̃* of the epoch best.h5 holds (store/best_epoch.py)
    status: dict = field(default_factory=dict)
    estimates: list[dict] = field(default_factory=list)  # every cached test estimate
    headline: dict | None = None  # the test estimate with most points, then the largest K
    z: dict | None = None
    sweep: list[dict] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # caption -> relative path
    notes: list[str] = field(default_factory=list)

    @property
    def log_pstar(self) -> tuple[float, float] | None:
        if self.headline is None or self.z is None:
            return None
        h = self.headline
        return h["log_ptilde"] - self.z["mean"], math.hypot(h.get("log_ptilde_se") or 0.0, self.z.get("se") or 0.0)


def _bin_means(x: np.ndarray, y: np.ndarray, n: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points: means of consecutive equal-size bins (the per-update bound is noisy)."""
    if len(x) <= n:
        return x, y
    edges = np.linspace(0, len(x), n + 1).astype(int)
    return (np.array([x[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]),
            np.array([y[a:b].mean() for a, b in zip(edges[:-1], edges[1:])]))  # fmt: skip


def _finite(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    ok = np.isfinite(ys[0])
    return (x[ok], *(y[ok] for y in ys))


def headline_estimate(cache) -> dict | None:
    """The cached estimate on the most points, at the largest K among those."""
    if cache is None or not cache.estimates:
        return None
    return max(cache.estimates, key=lambda e: (e["n"], e["K"]))


def collect(root: Path, name: str, options: ReportOptions, progress: ProgressFactory | None = None) -> RunReport:
    """A run's config, status and cached evaluation; with ``options.compute`` a missing K sweep and
    2 log Z are computed (and cached in the run folder)."""
    from bihm_app.store.checkpoint import read_meta
    from bihm_app.store.runs import open_run

    run = open_run(name, root)
    rep = RunReport(run.name, run.path)
    try:
        rep.status = run.read_status()
    except BihmError as exc:
        rep.notes.append(str(exc))
    for ck in (run.checkpoint_path, run.best_path):
        if ck.exists():
            try:
                meta = read_meta(ck)
            except BihmError as exc:  # a damaged checkpoint.h5: say so, and take best.h5's meta
                rep.notes.append(str(exc))
                continue
            rep.config, rep.progress = meta.get("config", {}), meta.get("progress", {})
            method = (rep.config.get("train") or {}).get("method") if isinstance(rep.config, dict) else None
            history = meta.get("history") if isinstance(meta.get("history"), dict) else {}
            rep.best_valid = at_best_epoch(history, ["valid_log_ptilde"], best_by(method))[1].get("valid_log_ptilde", (None,))[0]
            break
    if not run.best_path.exists():
        rep.notes.append("no best.h5 yet: nothing to evaluate or draw")
        return rep
    cache = run_cache(run.path, options.split)
    damaged = cache_problem(run.path, options.split) if cache is None else None
    if damaged is not None:  # it was ignored silently
        rep.notes.append(f"{damaged}; ignored (`bihm eval {run.name}` writes it again)")
    sweep = cache.sweep() if cache is not None else []
    points = [(K, options.sweep_points) for K in options.sweep] if len(sweep) < 3 else []
    # 2 log Z: computed unless an estimate with at least the samples asked for is cached
    z_samples = options.z_samples if cache is None or cache.z(max(2, options.z_samples)) is None else 0
    if options.compute and (points or z_samples >= 2):
        plan = EvalPlan(points, z_samples, 1, options.split, options.seed)
        res = evaluate_target(run.path, root, plan, device=options.device, progress=progress)
        cache = res.cache
        sweep = cache.sweep(res.estimates()[0]["n"]) if points else cache.sweep()
    if cache is None:
        rep.notes.append(f"no cached evaluation: `bihm eval {run.name} --k-sweep` computes one")
        return rep
    rep.sweep = sweep
    rep.estimates = sorted(cache.estimates, key=lambda e: (e["n"], e["K"]))
    rep.headline = headline_estimate(cache)
    zs = [z for z in cache.log_z2 if z.get("inner") == 1] or cache.log_z2
    rep.z = max(zs, key=lambda z: z["samples"]) if zs else None
    return rep


# -- figures ------------------------------------------------------------------------------------
def training_figures(run_dir: Path, out: Path, name: str, notes: list[str] | None = None) -> dict[str, str]:
    """Per-update bound, validation log p̃* and log p, 2 log Z, ESS (PNG); caption -> path under out.
    What could not be read of the metrics (a damaged file: its epochs are missing from the curves)
    is added to ``notes``."""
    from bihm_app.render.chart import save_chart_png
    from bihm_app.store.metrics import read_run_metrics

    m = read_run_metrics(run_dir)
    if notes is not None:
        notes += [f"left out of the curves: {w}" for w in m.warnings]
    out.mkdir(parents=True, exist_ok=True)
    figs: dict[str, str] = {}
    u, e = m.updates, m.epochs
    if len(u):
        x, y = _bin_means(u["step"].astype(float), u["objective"].astype(float))
        save_chart_png({"batch bound": (x, y)}, out / "training.png", title=f"{name}: training objective per update",
                       x_label="update", y_label="nats")  # fmt: skip
        figs["per-update bound (minibatch log p̃*(x) estimate, binned means)"] = "training.png"
    if len(e):
        ep = e["epoch"].astype(float)
        series, bands = {}, {}
        for col, label in (("valid_log_ptilde", "valid log p̃*(x)"), ("valid_log_p", "valid log p(x)")):
            x, y, se = _finite(ep, e[col].astype(float), e[f"{col}_se"].astype(float))
            series[label], bands[label] = (x, y), 2 * np.nan_to_num(se)
        save_chart_png(series, out / "validation.png", title=f"{name}: validation (K = 10)", bands=bands,
                       y_label="nats", band_label="± 2 SE")  # fmt: skip
        figs["validation log p̃*(x) and log p(x) per epoch, ± 2 SE"] = "validation.png"
        x, y, se = _finite(ep, e["log_z2"].astype(float), e["log_z2_se"].astype(float))
        if len(x):
            save_chart_png({"2 log Z": (x, y)}, out / "log-z.png", title=f"{name}: 2 log Z", bands={"2 log Z": 2 * np.nan_to_num(se)},
                           y_label="nats", band_label="± 2 SE")  # fmt: skip
            figs["2 log Z (eq. 3.11) per epoch, ± 2 SE"] = "log-z.png"
        x, y = _finite(ep, 100 * e["ess"].astype(float))
        if len(x):
            save_chart_png({"ESS": (x, y)}, out / "ess.png", title=f"{name}: effective sample size of q (validation, K = 10)",
                           y_label="% of K")  # fmt: skip
            figs["effective sample size of q(h|x) for p*(h|x), % of K"] = "ess.png"
    return figs


def picture_figures(root: Path, rep: RunReport, out: Path, options: ReportOptions, progress: ProgressFactory) -> dict[str, str]:
    """Gibbs samples of p*, inpainting of test rows (bottom half missing) and layer-wise pictures."""
    from bihm_app.render.grid import side_by_side
    from bihm_app.render.png import save_png
    from bihm_app.runner.models import dataset, load_model
    from bihm_app.runner.pictures import SamplingConfig, inpaint_panel, layer_pictures, missing_mask, pick_rows, sample_pictures, to_grid

    lm = load_model(rep.path / "best.h5", root, options.device)
    model, ds, shape = lm.model, dataset(lm.data_name), lm.image_shape
    cfg = SamplingConfig(steps=options.gibbs_steps, K=options.K_pictures, seed=options.seed)
    figs: dict[str, str] = {}
    n = options.n_pictures
    advance = progress(f"{rep.name}: Gibbs samples", 1)
    grid = to_grid(sample_pictures(model, n, cfg).means, shape)
    save_png(grid, out / "samples.png")
    advance(1)
    figs[f"{n} samples of p*: Gibbs sampling (Algorithm 2), {options.gibbs_steps} sweeps, K = {options.K_pictures} (Bernoulli means)"] = "samples.png"
    split = options.split if options.split in ds.split_names else ds.split_names[-1]
    _, x_true = pick_rows(ds, split, None, min(8, ds.size(split)))
    missing = missing_mask("bottom", model.sizes[0], shape, options.seed)
    advance = progress(f"{rep.name}: inpainting", options.gibbs_steps)
    picture, _, score, _ = inpaint_panel(model, x_true, missing, shape, cfg, progress=advance)
    save_png(picture, out / "inpaint.png")
    figs[f"inpainting (3.4): original | bottom half hidden | completion after {options.gibbs_steps} sweeps; "
         f"log-likelihood of the true hidden pixels {float(score.log_lik.mean()):.2f} nats, pixel error "
         f"{100 * float(score.error_rate.mean()):.1f} %"] = "inpaint.png"  # fmt: skip
    L = model.n_layers
    layers = sorted({1, (L + 1) // 2, L})
    panels = [to_grid(layer_pictures(model, layer, 16, options.seed).means, shape, ncol=4) for layer in layers]
    save_png(side_by_side(panels, gap=8), out / "layers.png")
    figs[f"layer-wise generation: 16 completions below one state of layer {', '.join(map(str, layers))} (left to right)"] = "layers.png"
    return figs


# -- the report ---------------------------------------------------------------------------------
def summary_table(reports: list[RunReport], split: str) -> Table:
    rows = []
    for r in reports:
        train = r.config.get("train", {})
        layers = ",".join(str(n) for n in r.config.get("model", {}).get("layers", []))
        h = r.headline
        star = r.log_pstar
        rows.append([
            r.name, str(r.config.get("data", "—")), layers or "—", str(train.get("method", "—")),
            str(r.progress.get("epoch", "—")), str(r.progress.get("best_epoch", "—")),
            pm(r.best_valid, None, 3),
            "—" if h is None else f"{pm(h['log_ptilde'], h.get('log_ptilde_se'))} (K={h['K']:,}, n={h['n']:,})",
            "—" if h is None else pm(h["log_p"], h.get("log_p_se")),
            "—" if r.z is None else pm(r.z["mean"], r.z["se"], 3),
            "—" if star is None else pm(*star),
            "—" if h is None else f"{100 * h['ess']:.1f} %",
        ])  # fmt: skip
    return Table("summary", ["run", "data", "layers", "method", "epochs", "best epoch", "best valid log p̃*(x)",
                             f"{split} log p̃*(x)", "log p(x)", "2 log Z", "log p*(x)", "ESS"], rows,
                 [f"{split}-set numbers are the cached evaluation of best.h5 (`bihm eval RUN`); log p*(x) = "
                  "log p̃*(x) − 2 log Z with the SEs added in quadrature."])  # fmt: skip


def estimates_table(rep: RunReport) -> Table:
    rows = []
    for e in rep.estimates:
        star = "—" if rep.z is None else pm(e["log_ptilde"] - rep.z["mean"], math.hypot(e["log_ptilde_se"], rep.z["se"]))
        rows.append([f"{e['K']:,}", f"{e['n']:,}", pm(e["log_p"], e["log_p_se"]), pm(e["log_ptilde"], e["log_ptilde_se"]),
                     f"{100 * e['ess']:.1f} %", star])  # fmt: skip
    return Table("", ["K", "points", "log p(x)", "log p̃*(x)", "ESS", "log p*(x)"], rows)


def _status_line(rep: RunReport) -> str:
    p = rep.progress
    state = rep.status.get("state", "unknown")
    took = p.get("elapsed")
    parts = [f"state **{state}**"]
    if p.get("stop_reason"):
        parts.append(f"stopped by {p['stop_reason']}")
    parts.append(f"epoch {p.get('epoch', '—')}, {p.get('step', '—')} updates")
    if isinstance(took, (int, float)):
        parts.append(f"{duration(took)} of training")
    best = rep.best_valid
    if p.get("best_epoch") and isinstance(best, (int, float)) and math.isfinite(best):
        parts.append(f"best validation log p̃*(x) {best:.3f} at epoch {p['best_epoch']}")
    elif not p.get("epoch"):
        parts.append("no epoch finished yet (no validation estimate)")
    return "; ".join(parts) + "."


def _check_folder_names(root: Path, runs: list[str], out_dir: Path) -> None:
    """Each run's figures go to ``out_dir/<its folder name>``: two runs whose folders share a name
    (``/a/r`` and ``/b/r``) would overwrite each other's, so they are refused, naming both."""
    from bihm_app.store.runs import open_run

    seen: dict[str, tuple[str, Path]] = {}
    for arg in runs:
        path = open_run(arg, root).path
        first = seen.setdefault(path.name, (arg, path))
        if first[0] == arg:
            continue
        if first[1].resolve() == path.resolve():
            raise ConfigError(f"run {path.name!r} is named twice (as {first[0]!r} and {arg!r})")
        raise ConfigError(f"runs {first[1]} and {path} have the same folder name {path.name!r}: their figures would "
                          f"overwrite each other in {out_dir / path.name} (report them separately, or copy one "
                          "to a folder of another name)")  # fmt: skip


def write_report(root: Path, runs: list[str], out_dir: Path, options: ReportOptions | None = None,
                 progress: ProgressFactory | None = None, command: str = "") -> Path:  # fmt: skip
    """Write ``out_dir/report.md`` and its figures; returns the markdown's path.

    Everything is written into a staging folder inside ``out_dir`` first and moved into place at
    the end (figures, then report.md last): an error or a kill half-way leaves the previous report
    and its figures as they were, never new figures beside an old report."""
    options = options or ReportOptions()
    progress = progress or no_progress
    if not runs:
        raise ConfigError("give at least one run")
    twice = sorted({r for r in runs if runs.count(r) > 1})
    if twice:
        raise ConfigError(f"run {', '.join(repr(r) for r in twice)} is named twice")
    out_dir = Path(out_dir)
    _check_folder_names(Path(root), runs, out_dir)
    reports = [collect(Path(root), name, options, progress) for name in runs]  # a bad run: no empty folder left
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stage = _staging_folder(out_dir)
    except OSError as exc:
        raise ConfigError(f"--out {out_dir}: cannot create ({exc.strerror or exc})") from None
    try:
        lines = _write_figures_and_text(root, reports, stage, options, progress, command)
        (stage / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        _publish(stage, out_dir)
    except OSError as exc:  # the staging folder's path means nothing to the user: the reason only
        raise ConfigError(f"--out {out_dir}: cannot write the report ({exc.strerror or exc})") from None
    except DiskFull:
        raise DiskFull(f"--out {out_dir}: cannot write the report (no space left on device)") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a report that failed leaves no empty folder it made
    return out_dir / "report.md"


def _write_figures_and_text(root: Path, reports: list[RunReport], out_dir: Path, options: ReportOptions,
                            progress: ProgressFactory, command: str) -> list[str]:  # fmt: skip
    """The figures into ``out_dir`` (the staging folder) and the report's markdown lines."""
    from bihm_app.render.chart import save_chart_png
    from bihm_app.runner.evaluation import save_k_sweep_png

    lines = ["# bihm-app report", "",
             f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by bihm-app {__version__}"
             + (f" with `{command}`" if command else "") + ".", ""]  # fmt: skip
    lines += [to_markdown([summary_table(reports, options.split)]), ""]
    if len(reports) > 1:
        series, bands = {}, {}
        from bihm_app.store.metrics import read_run_metrics

        for r in reports:
            e = read_run_metrics(r.path).epochs
            if len(e):
                x, y, se = _finite(e["epoch"].astype(float), e["valid_log_ptilde"].astype(float), e["valid_log_ptilde_se"].astype(float))
                series[r.name], bands[r.name] = (x, y), 2 * np.nan_to_num(se)
        save_chart_png(series, out_dir / "compare-valid.png", title="validation log p̃*(x)", bands=bands, y_label="nats",
                       band_label="± 2 SE")  # fmt: skip
        lines += [f"![{md_escape('validation log p̃*(x) of every run, ± 2 SE')}](compare-valid.png)", ""]
        sweeps = {r.name: r.sweep for r in reports if r.sweep}
        if sweeps:
            save_k_sweep_png(sweeps, out_dir / "compare-k-sweep.png", "log p̃*(x) and log p(x) against K")
            lines += [f"![{md_escape('log p̃*(x) and log p(x) against K, every run')}](compare-k-sweep.png)", ""]
    for r in reports:
        sub = out_dir / r.name
        r.figures.update(training_figures(r.path, sub, r.name, r.notes))
        if r.sweep:
            save_k_sweep_png({r.name: r.sweep}, sub / "k-sweep.png", f"{r.name}: log p̃*(x) and log p(x) against K")
        if options.pictures and (r.path / "best.h5").exists():
            try:
                r.figures.update(picture_figures(Path(root), r, sub, options, progress))
            except RunError as exc:  # a label-on-top run has no label-free p(x, h) to sample: the rest stands
                r.notes.append(f"pictures left out: {exc}")
        lines += _run_section(r)
    return lines


def report_figures(md: Path) -> list[Path]:
    """The PNG files report.md ``md`` links to, each once (not every PNG of its folder: --out may
    hold other pictures, an earlier report's figures or another report's staging folder)."""
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", Path(md).read_text(encoding="utf-8"))
    return [md.parent / p for p in dict.fromkeys(links)]


STAGE_PREFIX = ".bihm-report-"


def _staging_folder(out_dir: Path) -> Path:
    """A fresh ``.bihm-report-<pid>-<random>.tmp`` folder in ``out_dir``; leftovers of killed reports (their
    process gone) are removed."""
    for old in out_dir.glob(f"{STAGE_PREFIX}*.tmp"):
        pid = old.name[len(STAGE_PREFIX) : -len(".tmp")].split("-")[0]
        if not (pid.isdigit() and _alive(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    stage = out_dir / f"{STAGE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # two reports of one process apart
    stage.mkdir()
    return stage


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another report of this process (the dashboard's) may be writing there now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    return True


def _publish(stage: Path, out_dir: Path) -> None:
    """Move the staged files into ``out_dir`` (each ``os.replace`` is atomic), report.md last."""
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == "report.md" and p.parent == stage)
    for f in files:
        dest = out_dir / f.relative_to(stage)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
    fsync_dir(out_dir)


def _figures(name: str, figs: list[tuple[str, str]]) -> list[str]:
    out = []
    for caption, path in figs:
        out += [f"![{md_escape(caption)}]({name}/{path})", "", md_escape(caption), ""]
    return out


def _run_section(r: RunReport) -> list[str]:
    lines = [f"## {md_escape(r.name)}", "", md_escape(_status_line(r)).replace("\\*\\*", "**"), ""]
    lines += [f"- {md_escape(n)}" for n in r.notes] + ([""] if r.notes else [])
    curves = [(c, p) for c, p in r.figures.items() if p in ("training.png", "validation.png", "log-z.png", "ess.png")]
    if curves:
        lines += ["### Training curves", ""] + _figures(r.name, curves)
    if r.estimates:
        lines += ["### Test set (cached evaluation of best.h5)", "", to_markdown([estimates_table(r)])]
        if r.z is not None:
            lines += [md_escape(f"2 log Z = {pm(r.z['mean'], r.z['se'], 3)} ({r.z['samples']:,} samples, inner {r.z['inner']}); "
                                "ESS: the effective sample size of q(h|x) as a proposal for p*(h|x), as a fraction of K."), ""]  # fmt: skip
    if r.sweep:
        n = r.sweep[0]["n"]
        lines += ["### Sensitivity to K", "", f"On {describe_points(n, r.sweep[0], (r.config.get('data', '') + ' test points').strip())}, ± 2 SE:", "",
                  f"![{md_escape('log p̃*(x) and log p(x) against K')}]({r.name}/k-sweep.png)", ""]  # fmt: skip
    pics = [(c, p) for c, p in r.figures.items() if p in ("samples.png", "inpaint.png", "layers.png")]
    if pics:
        lines += ["### Pictures", ""] + _figures(r.name, pics)
    if r.config:
        rows = [[k, v] for k, v in sorted(flatten(r.config, as_text=True).items())]
        lines += ["### Configuration", "", to_markdown([Table("", ["key", "value"], rows)])]
    return lines
