"""Test-set evaluation of a checkpoint, with its results cached in the run folder.

``evaluate_target`` computes log p̃*(x) (3.5), log p(x) (3.6) and the ESS for each requested
(K, number of points) and 2 log Z (3.11) with the engine's estimators, and merges them into
``<run>/eval-<split>.json`` (atomic write) so that ``bihm report``, ``bihm repro`` and the
dashboard show them without recomputing. Cached entries belong to one checkpoint: the cache records
the checkpoint's file name, epoch, step and parameter digest, and entries of another checkpoint
(best.h5 rewritten by further training) are dropped, never shown as current. An estimate on fewer
points than the split holds is on a seeded random subset (:mod:`bihm_app.runner.subsets`; its
``subset_seed`` is recorded), never on the first points; such entries written before (on the first
n points, without a seed) are recomputed rather than reused.

Cache file (JSON)::

    {"format": "bihm-eval", "version": 1, "split": "test", "data": "adult",
     "checkpoint": "best.h5", "epoch": 120, "step": 6000, "params_sha256": "…",
     "estimates": [{"K": 1000, "n": 26147, "log_ptilde": …, "log_ptilde_se": …, "log_p": …,
                    "log_p_se": …, "ess": …, "ess_se": …, "seed": 0, "seconds": …},
                   {"K": 10000, "n": 1000, …, "subset_seed": 0, "subset_of": 26147}, …],
     "log_z2": [{"samples": 1000000, "inner": 1, "mean": …, "se": …, "seed": 0, "seconds": …}]}
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bihm_app.errors import ConfigError
from bihm_app.runner.subsets import describe_points, subset_indices, subset_record

CACHE_FORMAT = "bihm-eval"
CACHE_VERSION = 1
#: Outer samples of 2 log Z per chunk (the unit torchrun ranks share).
Z_CHUNK = 20_000
#: The K-sensitivity sweep of ``bihm eval --k-sweep`` (thesis figure comparing BiHM and RWS).
DEFAULT_SWEEP = (1, 3, 10, 30, 100, 300, 1000, 3000, 10_000)

#: ``progress(description, total)`` opens a task and returns ``advance(amount)``.
ProgressFactory = Callable[[str, int], Callable[[int], None]]


def no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda amount: None


@dataclass
class EvalPlan:
    """What to estimate: (K, points) pairs (points 0 = the whole split, fewer: a random subset drawn
    with ``seed``, :mod:`bihm_app.runner.subsets`) and 2 log Z."""

    points: list[tuple[int, int]]
    z_samples: int = 1_000_000
    z_inner: int = 1
    split: str = "test"
    seed: int = 0
    batch: int = 100

    def __post_init__(self) -> None:
        if not self.points and self.z_samples < 2:
            raise ConfigError("nothing to evaluate: give at least one K or 2 log Z samples")
        for K, n in self.points:
            if K < 1 or n < 0:
                raise ConfigError(f"K must be at least 1 and the number of points non-negative, got K={K}, n={n}")
        if self.z_samples and self.z_samples < 2:
            raise ConfigError(f"2 log Z needs at least 2 samples, got {self.z_samples}")
        if self.z_inner < 1:
            raise ConfigError(f"inner samples for 2 log Z must be at least 1, got {self.z_inner}")
        if self.batch < 1:
            raise ConfigError(f"batch must be at least 1, got {self.batch}")


@dataclass
class EvalCache:
    """The evaluation results of one checkpoint on one split."""

    split: str
    data: str
    checkpoint: str
    epoch: int | None
    step: int | None
    params_sha256: str | None = None
    estimates: list[dict] = field(default_factory=list)
    log_z2: list[dict] = field(default_factory=list)

    def estimate(self, K: int, n: int, subset_seed: int | None = None) -> dict | None:
        """The entry for K samples on n points: the whole split (n = its size, ``subset_seed`` None)
        or the random subset drawn with ``subset_seed``."""
        for e in self.estimates:
            if e.get("K") == K and e.get("n") == n and e.get("subset_seed") == subset_seed:
                return e
        return None

    def z(self, samples: int, inner: int = 1) -> dict | None:
        """A 2 log Z entry with at least ``samples`` outer samples and this many inner ones (the largest)."""
        ok = [z for z in self.log_z2 if z.get("inner") == inner and z.get("samples", 0) >= samples]
        return max(ok, key=lambda z: z["samples"]) if ok else None

    def add_estimate(self, entry: dict) -> None:
        self.estimates = [e for e in self.estimates if not (e.get("K") == entry["K"] and e.get("n") == entry["n"])]
        self.estimates.append(entry)
        self.estimates.sort(key=lambda e: (e["n"], e["K"]))

    def add_z(self, entry: dict) -> None:
        self.log_z2 = [z for z in self.log_z2 if not (z.get("samples") == entry["samples"] and z.get("inner") == entry["inner"])]
        self.log_z2.append(entry)
        self.log_z2.sort(key=lambda z: (z["inner"], z["samples"]))

    def sweep(self, n: int | None = None) -> list[dict]:
        """Estimates on the same points (default: the n with most K values; the same subset seed), by K."""
        if not self.estimates:
            return []
        counts: dict[tuple, int] = {}
        for e in self.estimates:
            key = (e["n"], e.get("subset_seed") is None, e.get("subset_seed") or 0)
            if n is None or e["n"] == n:
                counts[key] = counts.get(key, 0) + 1
        if not counts:
            return []
        n, whole, seed = max(counts, key=lambda k: (counts[k], k))
        same = (lambda e: e.get("subset_seed") is None) if whole else (lambda e: e.get("subset_seed") == seed)
        return sorted((e for e in self.estimates if e["n"] == n and same(e)), key=lambda e: e["K"])

    def to_dict(self) -> dict:
        return {
            "format": CACHE_FORMAT, "version": CACHE_VERSION, "split": self.split, "data": self.data,
            "checkpoint": self.checkpoint, "epoch": self.epoch, "step": self.step,
            "params_sha256": self.params_sha256, "estimates": self.estimates, "log_z2": self.log_z2,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> "EvalCache":
        if not isinstance(d, dict) or d.get("format") != CACHE_FORMAT or d.get("version") != CACHE_VERSION:
            raise ValueError("not a bihm-eval version 1 file")
        est, z = d.get("estimates", []), d.get("log_z2", [])
        if not isinstance(est, list) or not isinstance(z, list):
            raise ValueError("estimates and log_z2 must be lists")
        for e in est:
            _check_entry(e, _ESTIMATE_FIELDS, "an estimate")
        for e in z:
            _check_entry(e, _Z_FIELDS, "a 2 log Z entry")
        return cls(str(d.get("split")), str(d.get("data")), str(d.get("checkpoint")), d.get("epoch"), d.get("step"),
                   d.get("params_sha256"), list(est), list(z))  # fmt: skip


#: Fields of a cache entry: name -> (kind, required). "count": an int ≥ its minimum; "value": a
#: finite number; "se": a number, NaN allowed (one point has no standard error), never ±inf.
_ESTIMATE_FIELDS = {"K": ("count", 1, True), "n": ("count", 0, True), "log_ptilde": ("value", 0, True),
                    "log_p": ("value", 0, True), "log_ptilde_se": ("se", 0, True), "log_p_se": ("se", 0, True),
                    "ess": ("value", 0, True), "ess_se": ("se", 0, False), "seed": ("count", 0, False),
                    "seconds": ("se", 0, False), "subset_seed": ("count", 0, False), "subset_of": ("count", 0, False)}  # fmt: skip
_Z_FIELDS = {"samples": ("count", 2, True), "inner": ("count", 1, True), "mean": ("value", 0, True),
             "se": ("se", 0, True), "seed": ("count", 0, False), "seconds": ("se", 0, False)}  # fmt: skip


def _check_entry(e, fields: dict, what: str) -> None:
    """ValueError unless ``e`` is a dict whose fields have their kinds (a damaged or forged cache
    is then unusable — recomputed — instead of a TypeError or KeyError in whoever prints it)."""
    if not isinstance(e, dict):
        raise ValueError(f"{what} is not an object")
    for name, (kind, least, required) in fields.items():
        v = e.get(name)
        if v is None and not required:
            continue
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if kind == "count":
            ok = isinstance(v, int) and not isinstance(v, bool) and v >= least
        else:
            ok = number and (math.isfinite(v) if kind == "value" else not math.isinf(v))
        if not ok:
            raise ValueError(f"{what} has a bad {name!r}: {v!r:.40}")


def cache_path(run_dir: Path, split: str = "test", checkpoint: str = "best.h5") -> Path:
    """``eval-<split>.json`` for best.h5 (what report, repro and the dashboard read),
    ``eval-<split>-latest.json`` for checkpoint.h5."""
    return Path(run_dir) / (f"eval-{split}.json" if checkpoint == "best.h5" else f"eval-{split}-latest.json")


def read_cache(run_dir: Path, split: str = "test", checkpoint: str = "best.h5") -> EvalCache | None:
    """The cached results in a run folder, or None if there are none (or the file is unusable)."""
    return _load_cache(run_dir, split, checkpoint)[0]


def cache_problem(run_dir: Path, split: str = "test", checkpoint: str = "best.h5") -> str | None:
    """Why a cache file that exists cannot be used (one line naming it), or None."""
    return _load_cache(run_dir, split, checkpoint)[1]


def _load_cache(run_dir: Path, split: str, checkpoint: str) -> tuple[EvalCache | None, str | None]:
    from bihm_app.safe_files import FileProblem, read_capped

    path = cache_path(run_dir, split, checkpoint)
    if not os.path.lexists(path):
        return None, None
    try:  # a regular file inside the run folder only, and bounded (never blocks on a FIFO)
        return EvalCache.from_dict(json.loads(read_capped(path, 16 << 20, within=Path(run_dir)).decode("utf-8"))), None
    except (OSError, ValueError, UnicodeDecodeError, TypeError, RecursionError, FileProblem) as exc:
        why = " ".join(str(exc).split())[:160] or type(exc).__name__
        return None, f"{path}: unreadable ({why})"


def write_cache(run_dir: Path, cache: EvalCache) -> Path:
    from bihm_app.store.runs import write_json_atomic

    path = cache_path(run_dir, cache.split, cache.checkpoint)
    write_json_atomic(path, cache.to_dict())
    return path


def _save_cache(result: "EvalResult", run_dir: Path, cache: EvalCache) -> None:
    """Write the cache; a run folder it cannot be written to (read-only, no permission) leaves
    the results standing and says why in ``result.cache_problem`` (a full disk still raises)."""
    try:
        result.written = write_cache(run_dir, cache)
        result.cache_problem = None
    except OSError as exc:
        result.cache_problem = f"cannot write {cache_path(run_dir, cache.split, cache.checkpoint)} ({exc.strerror or exc})"


def _checkpoint_key(meta: dict) -> tuple[int | None, int | None]:
    prog = meta.get("progress", {}) if isinstance(meta, dict) else {}
    return prog.get("epoch"), prog.get("step")


def cache_for_checkpoint(ckpt: Path, split: str = "test", meta: dict | None = None) -> EvalCache | None:
    """The cache next to ``ckpt`` if it belongs to this very checkpoint (same file, epoch and step).

    Cheap (reads the checkpoint's meta only): for listings such as the dashboard's.
    """
    from bihm_app.store.checkpoint import read_meta

    ckpt = Path(ckpt)
    cache = read_cache(ckpt.parent, split, ckpt.name)
    if cache is None or cache.checkpoint != ckpt.name:
        return None
    if meta is None:
        meta = read_meta(ckpt)
    return cache if (cache.epoch, cache.step) == _checkpoint_key(meta) else None


def run_cache(run_dir: Path, split: str = "test") -> EvalCache | None:
    """The cached results of a run's best checkpoint (None when missing or stale)."""
    from bihm_app.errors import BihmError

    best = Path(run_dir) / "best.h5"
    if not best.exists():
        return None
    try:
        return cache_for_checkpoint(best, split)
    except BihmError:
        return None


@dataclass
class EvalResult:
    """What :func:`evaluate_target` computed or found: the cache of this checkpoint and the plan."""

    cache: EvalCache
    plan: EvalPlan
    checkpoint: Path
    split_size: int
    computed: int = 0  # number of entries computed now (0: everything came from the cache)
    written: Path | None = None
    cache_problem: str | None = None  # why the cache could not be written (the results stand)
    z_now: dict | None = None  # the 2 log Z entry computed by this call (None: none computed)

    def estimates(self) -> list[dict]:
        """The plan's estimates, in the plan's order."""
        out = []
        for K, n in self.plan.points:
            n_pts = _points(n, self.split_size)
            e = self.cache.estimate(K, n_pts, subset_record(self.split_size, n_pts, self.plan.seed).get("subset_seed"))
            if e is not None:
                out.append(e)
        return out

    def z(self) -> dict | None:
        """The 2 log Z to report: the one computed now with the plan's samples, exactly as asked;
        only when nothing was computed (``use_cache``) the cached entry with at least that many
        samples (the most precise; its ``samples`` say how many — print them)."""
        if not self.plan.z_samples:
            return None
        if self.z_now is not None:
            return self.z_now
        return self.cache.z(self.plan.z_samples, self.plan.z_inner)

    @property
    def z_cached(self) -> bool:
        """Whether :meth:`z` comes from the cache rather than from this call."""
        return self.z_now is None and self.z() is not None

    def z_more_precise(self) -> dict | None:
        """A cached 2 log Z of this checkpoint (same inner samples) with more samples than
        :meth:`z`, or None: shown beside the one asked for, never instead of it."""
        z = self.z()
        return None if z is None else self.cache.z(int(z["samples"]) + 1, int(z["inner"]))


def _points(n: int, size: int) -> int:
    return size if n <= 0 else min(n, size)


def _digest(model) -> str:
    from bihm_app.store.checkpoint import params_digest

    return params_digest({k: v.detach().cpu().numpy() for k, v in model.named_parameters()})


def evaluate_target(
    target: str | Path,
    root: Path,
    plan: EvalPlan,
    *,
    which: str = "best",
    device: str = "auto",
    use_cache: bool = True,
    write: bool = True,
    progress: ProgressFactory | None = None,
    threads: str = "auto",
    rank: int = 0,
    world: int = 1,
) -> EvalResult:
    """Estimate every (K, points) of ``plan`` and 2 log Z for a run or checkpoint file.

    With ``use_cache``, entries already cached for this checkpoint are not recomputed. When the
    checkpoint lies in a run folder and ``write`` is set, every new entry is merged into
    ``eval-<split>.json`` as soon as it is computed (an interrupted evaluation keeps what it
    finished). Under torchrun (``rank`` of ``world``) the ranks share the samples of every estimate
    (runner/sharding.py) and rank 0 writes the cache. ``threads``: the thread policy's option.
    """
    import torch

    from bihm_app.data import as_tensor, check_compatible, load_dataset
    from bihm_app.runner.models import load_model
    from bihm_app.runner.seeds import derive_seed
    from bihm_app.runner.sharding import evaluate_sharded, log_z2_sharded, rank_share
    from bihm_app.runner.threads import configure_threads
    from bihm_app.store.runs import RunFolder

    progress = progress or no_progress
    lm = load_model(target, Path(root), device, which)
    model, meta, path = lm.model, lm.meta, lm.path
    configure_threads(threads, tuple(model.sizes), 1024)  # the estimators' chunks are ~1000 rows
    ds = load_dataset(meta["data"]["name"])
    check_compatible(ds, model.sizes[0], f"checkpoint {path}")
    if plan.split not in ds.split_names:
        raise ConfigError(f"data set {ds.name} has no split {plan.split!r} (splits: {', '.join(ds.split_names)})")
    size = ds.size(plan.split)
    epoch, step = _checkpoint_key(meta)
    digest = _digest(model)
    in_run = RunFolder(path.parent).looks_like_run() and path.name in ("best.h5", "checkpoint.h5")
    cache = read_cache(path.parent, plan.split, path.name) if in_run else None
    if cache is None or (cache.checkpoint, cache.params_sha256, cache.data) != (path.name, digest, ds.name):
        cache = EvalCache(plan.split, ds.name, path.name, epoch, step, digest)
    cache.epoch, cache.step = epoch, step
    result = EvalResult(cache, plan, path, size)
    save = write and in_run and rank == 0

    from bihm_app.runner.budget import check_work

    for K, n in plan.points:  # refuse absurd sizes before computing anything
        check_work(model.cfg, K * _points(n, size), f"-K {K:,} on {_points(n, size):,} points")
    if plan.z_samples >= 2:
        check_z_budget(model, plan.z_samples, plan.z_inner, "--z-samples")
    x_all = None
    for K, n in plan.points:
        n_pts = _points(n, size)
        subset = subset_record(size, n_pts, plan.seed)  # fewer points than the split: a seeded random subset
        if use_cache and cache.estimate(K, n_pts, subset.get("subset_seed")) is not None:
            continue
        if x_all is None:
            x_all = as_tensor(ds, plan.split, device=model.device)
        idx = subset_indices(size, n_pts, plan.seed)
        x = x_all if idx is None else x_all[torch.from_numpy(idx).to(x_all.device)]
        advance = progress(f"K = {K:,} on {describe_points(n_pts, subset)}", n_pts)
        t0 = time.time()
        est = evaluate_sharded(model, x, K, derive_seed(plan.seed, "eval", index=K), plan.batch, advance, rank, world)
        entry = dict(est.to_dict(), seed=plan.seed, seconds=round(time.time() - t0, 2), **subset)
        cache.add_estimate(entry)
        result.computed += 1
        if save:
            _save_cache(result, path.parent, cache)
    if plan.z_samples >= 2 and not (use_cache and cache.z(plan.z_samples, plan.z_inner) is not None):
        advance = progress(f"2 log Z, {plan.z_samples:,} samples", rank_share(plan.z_samples, Z_CHUNK, rank, world))
        t0 = time.time()
        z = log_z2_sharded(model, plan.z_samples, derive_seed(plan.seed, "eval_z"), plan.z_inner, Z_CHUNK, advance, rank, world)
        result.z_now = {"samples": plan.z_samples, "inner": plan.z_inner, "mean": z.mean, "se": z.se, "seed": plan.seed,
                        "seconds": round(time.time() - t0, 2)}  # fmt: skip
        cache.add_z(result.z_now)
        result.computed += 1
        if save:
            _save_cache(result, path.parent, cache)
    return result


def log_pstar(estimate: dict, z: dict | None) -> tuple[float, float] | None:
    """log p*(x) = log p̃*(x) − 2 log Z (3.3) with the SEs added in quadrature (independent estimates)."""
    if z is None:
        return None
    return estimate["log_ptilde"] - z["mean"], math.hypot(estimate.get("log_ptilde_se") or 0.0, z.get("se") or 0.0)


def parse_k_list(spec: str | Sequence[int] | None, default: Sequence[int] = DEFAULT_SWEEP, what: str = "K list") -> list[int]:
    """'1,10,1e3' -> [1, 10, 1000]; None -> ``default``; a ConfigError naming ``what`` otherwise."""
    if spec is None:
        return list(default)
    if not isinstance(spec, str):
        vals = [int(v) for v in spec]
    else:
        try:
            floats = [float(s) for s in spec.split(",")]  # an empty entry ("1,,10") is a ValueError too
            if not all(math.isfinite(f) and f == int(f) for f in floats):
                raise ValueError
            vals = [int(f) for f in floats]
        except (ValueError, OverflowError):  # "x", "1.5", "inf", "1e309"
            raise ConfigError(f"{what} {spec!r} is not a comma-separated list of integers") from None
    if not vals or any(v < 1 for v in vals):
        raise ConfigError(f"{what}: every K must be at least 1, got {spec!r}")
    return vals


def save_k_sweep_png(sweeps: dict[str, list[dict]], path: Path, title: str = "") -> Path:
    """log p̃*(x) and log p(x) against K (log axis) with ± 2 SE bands, one pair of curves per entry
    of ``sweeps`` (label -> estimates): the thesis' figure comparing BiHM with RWS."""
    from bihm_app.render.chart import save_chart_png

    series, bands = {}, {}
    for label, entries in sweeps.items():
        entries = sorted(entries, key=lambda e: e["K"])
        ks = [e["K"] for e in entries]
        prefix = f"{label}: " if len(sweeps) > 1 else ""
        for key, name in (("log_ptilde", "log p̃*(x)"), ("log_p", "log p(x)")):
            series[prefix + name] = (ks, [e[key] for e in entries])
            bands[prefix + name] = [2 * (e.get(f"{key}_se") or 0.0) for e in entries]
    return save_chart_png(series, path, title=title, bands=bands, x_label="K (importance samples, log scale)",
                          y_label="nats", x_log=True, band_label="± 2 SE")  # fmt: skip


def check_z_budget(model, samples: int, inner: int, what: str = "--samples") -> None:
    """Refuse (one line) a 2 log Z estimate whose chunk of ``min(samples, Z_CHUNK) × inner`` samples
    cannot fit in memory, or whose ``samples × inner`` would take absurdly long."""
    from bihm_app.runner.budget import check_samples_fit, check_work

    label = f"{what} {int(samples):,} × --inner {int(inner):,}" if inner > 1 else f"{what} {int(samples):,}"
    check_samples_fit(model.cfg, min(int(samples), Z_CHUNK) * int(inner), model.device, label)
    check_work(model.cfg, int(samples) * int(inner), label)


def estimate_z2(model, samples: int, inner: int = 1, seed: int = 0, progress: Callable[[int], None] | None = None,
                rank: int = 0, world: int = 1):  # fmt: skip
    """2 log Z (3.11) of a model with ``samples`` outer and ``inner`` inner samples on the ``eval_z``
    random stream: an estimate with ``.mean`` and ``.se`` (``bihm logz``, ``bihm eval`` of a
    semi-supervised run, the Python API). Under torchrun the ranks share the chunks (runner/sharding.py);
    a semi-supervised model (y sampled too) is computed by one process."""
    from bihm_app.engine.semisup import SemiBiHM, estimate_log_z2_labelled
    from bihm_app.runner.seeds import derive_seed, generator
    from bihm_app.runner.sharding import log_z2_sharded

    if samples < 2 or inner < 1:
        raise ConfigError("2 log Z needs at least 2 samples and at least 1 inner sample")
    if isinstance(model, SemiBiHM):
        gen = generator(seed, "eval_z", model.device)
        return estimate_log_z2_labelled(model, int(samples), gen, n_inner=inner, chunk=Z_CHUNK, progress=progress)
    return log_z2_sharded(model, int(samples), derive_seed(seed, "eval_z"), inner, Z_CHUNK, progress, rank, world)


def z2_progress_total(model, samples: int, rank: int = 0, world: int = 1) -> int:
    """How many of the ``samples`` of :func:`estimate_z2` this rank computes (a progress bar's total)."""
    from bihm_app.engine.semisup import SemiBiHM
    from bihm_app.runner.sharding import rank_share

    return int(samples) if isinstance(model, SemiBiHM) else rank_share(int(samples), Z_CHUNK, rank, world)
