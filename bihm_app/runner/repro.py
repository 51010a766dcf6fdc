"""``bihm repro``: train the thesis' protocols as ordinary runs, evaluate them, compare with the thesis.

UCI (table 3.1/3.2): for every set and every learning rate (and seed) one run named
``uci-<set>-lr<lr>-s<seed>`` (lr spelled ``1e-2``) with the thesis' architecture, K = 10, batch
100, Adam, L1 λ = 10⁻³ once per minibatch, and per-set schedules derived from the number of
updates per epoch u = ⌈n_train / 100⌉:

    patience = max(10, ⌈1000 / u⌉)   z_every = max(1, ⌈500 / u⌉)   epochs = ⌈100000 / u⌉

(early stopping looks at least 1,000 updates ahead; 2 log Z from 10⁵ samples every ≥ 500 updates;
at most 10⁵ updates). The run with the better best-validation log p̃*(x) is selected and its
``best.h5`` evaluated on the test set.

Runs are *adopted*: a run of the same name that finished (early stopping or epoch limit) is not
retrained; one that stopped or crashed is resumed; one with a different configuration is an
error; one that another process is training is left alone. A time budget per set (shared by its
runs) stops training cleanly, as SIGTERM does, and counts each run's cumulative training time, so
an interrupted ``repro`` continues where it stopped. Evaluation results are cached in the run
folders (:mod:`bihm_app.runner.evaluation`), so re-running only prints.

Tables are returned as :class:`Table` (strings), which the CLI draws with Rich and
:func:`to_markdown` writes as markdown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bihm_app.engine.model import PAPER12
from bihm_app.engine.training import TrainConfig
from bihm_app.errors import BihmError, ConfigError, RunError
from bihm_app.runner import thesis
from bihm_app.runner.evaluation import EvalPlan, ProgressFactory, evaluate_target, no_progress
from bihm_app.runner.progress import epochs_done_text, position_text
from bihm_app.runner.tables import Table, duration, to_markdown  # noqa: F401  (to_markdown: re-exported)
from bihm_app.runner.tables import pm as _pm
from bihm_app.runner.train_loop import Reporter, RunSpec, resume_run, start_run
from bihm_app.store.runs import RunFolder

DEFAULT_LRS = (1e-2, 1e-3)
MNIST_PROTOCOLS = ("thesis12", "rws7", "small")
#: Training-config fields that must match for a run to be adopted (the rest cannot change results).
_IGNORED_TRAIN_FIELDS = ("max_rollbacks", "cuda_graph")
#: Stopping budgets a user may raise on resume (`bihm train --resume RUN --patience 40`): a run that
#: was allowed to train longer than the protocol is adopted, and the training table says so.
_EXTENDABLE_FIELDS = ("patience", "epochs")


def _at_least(got, want) -> bool:
    """Is the stored stopping budget ``got`` at least the protocol's ``want``? (patience 0: never stop)."""
    if not isinstance(got, int) or isinstance(got, bool):
        return False
    return got == 0 or (want != 0 and got >= want)


# -- plans --------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """One run of a protocol: its name, data, architecture and training config."""

    name: str
    data: str
    layers: tuple[int, ...]
    train: TrainConfig
    lr: float
    seed: int
    phase: str = "train"  # "train", or "finetune" (starts from ``parent``'s best.h5)
    parent: str | None = None


@dataclass
class EvalSettings:
    """Test-set evaluation of the selected run: (K, points) pairs (points 0: all) and 2 log Z."""

    points: list[tuple[int, int]] = field(default_factory=lambda: [(1000, 0), (10_000, 2000)])
    z_samples: int = 1_000_000
    z_inner: int = 1
    seed: int = 0

    def plan(self) -> EvalPlan:
        return EvalPlan(list(self.points), self.z_samples, self.z_inner, "test", self.seed)


def lr_label(lr: float) -> str:
    """1e-2 -> '1e-2', 3e-4 -> '3e-4', 2.5e-3 -> '2.5e-3' (as in the run names)."""
    mantissa, exp = f"{lr:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exp)}"


def uci_run_name(data: str, lr: float, seed: int) -> str:
    return f"uci-{data}-lr{lr_label(lr)}-s{seed}"


def uci_train_config(n_train: int, lr: float, seed: int) -> TrainConfig:
    """The UCI protocol's training config for a set with ``n_train`` training rows."""
    upe = math.ceil(n_train / 100)
    return TrainConfig(
        method="bihm", K=10, batch_size=100, lr=lr, l1=1e-3, l1_per="batch", baseline=True,
        epochs=math.ceil(100_000 / upe), patience=max(10, math.ceil(1000 / upe)), valid_K=10, valid_max=0,
        z_samples=100_000, z_every=max(1, math.ceil(500 / upe)), seed=seed,
    )  # fmt: skip


def uci_plans(sets: list[str], lrs: list[float], seeds: int, layers: dict[str, tuple[int, ...]] | None = None,
              overrides: dict | None = None) -> dict[str, list[RunPlan]]:  # fmt: skip
    """Runs per set. ``layers`` adds architectures for sets outside table 3.2 and ``overrides``
    changes training fields (tests only; ``bihm repro`` never sets either)."""
    from bihm_app.data import load_dataset

    table = dict(thesis.UCI_LAYERS, **(layers or {}))
    plans: dict[str, list[RunPlan]] = {}
    for name in sets:
        if name not in table:
            raise ConfigError(f"unknown UCI set {name!r} (one of {', '.join(thesis.UCI_SETS)})")
        n_train = load_dataset(name).size("train")
        plans[name] = []
        for lr in lrs:
            for seed in range(seeds):
                cfg = uci_train_config(n_train, lr, seed)
                cfg = _override(cfg, overrides)
                plans[name].append(RunPlan(uci_run_name(name, lr, seed), name, table[name], cfg, lr, seed))
    return plans


def mnist_plans(protocol: str, seeds: int, overrides: dict | None = None, data: str = "bmnist",
                layers: tuple[int, ...] | None = None) -> list[RunPlan]:  # fmt: skip
    """The runs of a binarized-MNIST protocol (phase 1 then, for thesis12/rws7, fine-tuning).

    * thesis12 (section 3.6.2): 12 layers, K = 10, lr 10⁻³ until early stopping (patience 10),
      then fine-tuning with K = 100, lr 3·10⁻⁴.
    * rws7 (the RWS-protocol paragraph): 400-300-200-100-50-25-10, K = 5 for 1000 epochs, then
      K = 100 for 500 epochs (the thesis does not give the learning rates: 10⁻³ and 3·10⁻⁴ here).
    * small: 200-200, K = 10, lr 10⁻³, until early stopping (patience 10, at most 1000 epochs) —
      ``bihm train --layers 200,200``'s defaults; ``--budget 1h`` makes it fit a CPU hour.
    """
    if protocol not in MNIST_PROTOCOLS:
        raise ConfigError(f"unknown MNIST protocol {protocol!r} (one of {', '.join(MNIST_PROTOCOLS)})")
    phases = {
        "thesis12": (PAPER12, [dict(K=10, lr=1e-3, patience=10, epochs=1000), dict(K=100, lr=3e-4, patience=10, epochs=1000)]),
        "rws7": (thesis.RWS7_LAYERS, [dict(K=5, lr=1e-3, patience=0, epochs=1000), dict(K=100, lr=3e-4, patience=0, epochs=500)]),
        "small": ((200, 200), [dict(K=10, lr=1e-3, patience=10, epochs=1000)]),
    }[protocol]  # fmt: skip
    arch = tuple(layers) if layers else phases[0]
    out = []
    for seed in range(seeds):
        parent = None
        for i, ph in enumerate(phases[1]):
            cfg = TrainConfig(method="bihm", K=ph["K"], batch_size=100, lr=ph["lr"], l1=1e-3, l1_per="batch",
                              epochs=ph["epochs"], patience=ph["patience"], z_samples=100_000, z_every=1, seed=seed)  # fmt: skip
            cfg = _override(cfg, overrides)
            name = f"mnist-{protocol}-s{seed}" if i == 0 else f"mnist-{protocol}-ft-s{seed}"
            out.append(RunPlan(name, data, arch, cfg, ph["lr"], seed, "train" if i == 0 else "finetune", parent))
            parent = name
    return out


def _override(cfg: TrainConfig, overrides: dict | None) -> TrainConfig:
    """``cfg`` with ``overrides`` (validated again: the config is frozen)."""
    from bihm_app.runner.configs import train_config

    for k in overrides or {}:
        if not hasattr(cfg, k):
            raise ConfigError(f"unknown training field {k!r}")
    return train_config(cfg, **(overrides or {}))


def parse_duration(text: str | None) -> float | None:
    """'30m' -> 1800, '1h30m' -> 5400, '90s' / '90' -> 90, 'none' / None -> None (no limit).

    A zero budget is refused: it read as "no limit" and trained on to early stopping; training
    nothing is ``--eval-only``."""
    if text is None or str(text).strip().lower() in ("", "none"):
        return None
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        seconds = float(s)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", s)
        if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([dhms])", "", s).strip():
            raise ConfigError(f"budget {text!r} is not a duration (e.g. 30m, 2h, 1h30m, 90s)")
        unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        seconds = sum(float(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"--budget {text!r}: give a positive duration, leave --budget out for no limit, "
                          "or use --eval-only to train nothing")  # fmt: skip
    return seconds


# -- adoption -----------------------------------------------------------------------------------
@dataclass
class RunState:
    """Where one run of a protocol stands."""

    name: str
    lr: float
    seed: int
    phase: str = "train"
    state: str = "missing"  # missing | new | finished | resumable | running | budget | stopped
    epoch: int = 0  # epochs done
    batch: int = 0  # batches done of the next epoch (a run stopped in the middle of one)
    max_epochs: int = 0
    best_epoch: int | None = None
    best_valid: float | None = None
    best_valid_se: float | None = None
    stop_reason: str = ""
    train_seconds: float = 0.0
    budget_s: float | None = None
    trained_now: bool = False
    note: str = ""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _config_problems(meta_cfg: dict, plan: RunPlan, extended: list[str] | None = None) -> list[str]:
    """Human-readable differences between a stored run config and the plan (empty: same); stopping
    budgets raised beyond the protocol's are not differences but go to ``extended``."""
    probs = []
    data = meta_cfg.get("data")
    if data != plan.data:
        probs.append(f"data {data} ≠ {plan.data}")
    layers = tuple((meta_cfg.get("model") or {}).get("layers") or ())
    if layers != tuple(plan.layers):
        probs.append(f"layers {','.join(map(str, layers))} ≠ {','.join(map(str, plan.layers))}")
    try:
        stored = TrainConfig.from_dict(meta_cfg.get("train") or {}).to_dict()
    except (TypeError, ValueError) as exc:
        return probs + [f"unreadable training config ({exc})"]
    want = plan.train.to_dict()
    for k, v in want.items():
        if k in _IGNORED_TRAIN_FIELDS:
            continue
        got = stored.get(k)
        if k in _EXTENDABLE_FIELDS and got != v and _at_least(got, v):
            if extended is not None:
                extended.append(f"{k} {got} (protocol {v})")
            continue
        same = math.isclose(float(got), float(v), rel_tol=1e-9) if isinstance(v, float) and isinstance(got, (int, float)) else got == v
        if not same:
            probs.append(f"{k} {got} ≠ {v}")
    return probs


def _stored_meta(run: RunFolder) -> dict | None:
    """The latest checkpoint's meta, or None when the run never saved one."""
    from bihm_app.store.checkpoint import read_meta

    for path in (run.checkpoint_path, run.best_path):
        if path.exists():
            return read_meta(path)
    return None


def _stored_config(run: RunFolder, meta: dict | None) -> dict | None:
    if meta is not None:
        return meta.get("config")
    from bihm_app.store.metrics import read_run_metrics

    for info in read_run_metrics(run.path).run_info.values():
        if isinstance(info, dict) and isinstance(info.get("config"), dict):
            return info["config"]
    return None


def inspect_run(root: Path, plan: RunPlan) -> tuple[RunState, dict | None]:
    """The state of ``plan``'s run under ``root`` and its latest meta; RunError if a run of that
    name has a different configuration."""
    st = RunState(plan.name, plan.lr, plan.seed, plan.phase, max_epochs=plan.train.epochs)
    run = RunFolder(Path(root) / plan.name)
    if not run.path.exists():
        return st, None
    if not run.looks_like_run():
        raise RunError(f"{run.path} exists but is not a run folder; move it away to let repro create the run")
    meta = _stored_meta(run)
    cfg = _stored_config(run, meta)
    if cfg is not None:
        extended: list[str] = []
        probs = _config_problems(cfg, plan, extended)
        if extended:
            st.note = "trained with " + ", ".join(extended)
        if probs:
            shown = "; ".join(probs[:3]) + (f"; +{len(probs) - 3} more" if len(probs) > 3 else "")
            raise RunError(f"run {plan.name} ({run.path}) exists with a different configuration ({shown}); "
                           "rename or remove it to reproduce the protocol")  # fmt: skip
    status = run.read_status()
    if meta is not None:
        _fill_progress(st, meta)
    if status.get("state") == "running":
        st.state = "running"
        st.note = f"being trained by process {status.get('pid')} on {status.get('host')}"
    elif meta is None:
        st.state = "new"  # stopped before its first checkpoint: nothing to lose, start it in place
    elif meta.get("progress", {}).get("finished"):
        st.state = "finished"
    else:
        st.state = "resumable"
    return st, meta


def _fill_progress(st: RunState, meta: dict) -> None:
    p = meta.get("progress", {})
    st.epoch = int(p.get("epoch") or 0)
    st.batch = int(p.get("batch") or 0)
    st.best_epoch = p.get("best_epoch") if (p.get("best_epoch") or -1) > 0 else None
    st.best_valid = p.get("best_valid")
    st.stop_reason = str(p.get("stop_reason") or "")
    st.train_seconds = float(p.get("elapsed") or 0.0)
    hist = meta.get("history", {})
    if st.best_epoch is not None:
        epochs = list(hist.get("epoch", []))
        if st.best_epoch in epochs:
            se = (hist.get("valid_log_ptilde_se") or [None] * len(epochs))[epochs.index(st.best_epoch)]
            st.best_valid_se = se if isinstance(se, (int, float)) else None


# -- training -----------------------------------------------------------------------------------
class Interrupted(BihmError):
    """Training was stopped by Ctrl-C or SIGTERM; running the same command again continues."""


def _train_one(root: Path, plan: RunPlan, budget_s: float | None, device: str, reporter: Reporter,
               log: Callable[[str], None]) -> RunState:  # fmt: skip
    """Adopt, resume or start ``plan``'s run and train it (until done, the budget or a signal)."""
    st, meta = inspect_run(root, plan)
    st.budget_s = budget_s
    if st.state in ("finished", "running"):
        log(f"{plan.name}: {st.state}" + (f" ({st.stop_reason}, {epochs_done_text(st.epoch, st.max_epochs)})" if st.state == "finished" else f" — {st.note}; left alone"))
        return st
    if budget_s is not None and st.train_seconds >= budget_s:
        st.state = "budget"
        log(f"{plan.name}: its budget of {budget_s:.0f} s is spent (trained {st.train_seconds:.0f} s, {position_text(st.epoch, st.batch, st.max_epochs)}); not trained further")
        return st
    spec = RunSpec(data=plan.data, layers=tuple(plan.layers), train=plan.train, device=device, name=plan.name)
    if plan.phase == "finetune":
        parent = RunFolder(Path(root) / str(plan.parent))
        spec.init_from = {"run": plan.parent, "path": str(parent.best_path)}
    if st.state == "resumable":
        log(f"{plan.name}: resuming at epoch {st.epoch + 1}" + (f", batch {st.batch}" if st.batch else "")
            + f" ({epochs_done_text(st.epoch, st.max_epochs)}, {st.train_seconds:.0f} s trained)")  # fmt: skip
        run, reason = resume_run(root, plan.name, reporter, {"device": None if device == "auto" else device}, time_limit_s=budget_s)
    else:
        where = RunFolder(Path(root) / plan.name) if st.state == "new" else None
        log(f"{plan.name}: starting")
        run, reason = start_run(root, spec, reporter, time_limit_s=budget_s, run=where)
    st, meta = inspect_run(root, plan)
    st.budget_s, st.trained_now = budget_s, True
    if reason.startswith("signal"):
        raise Interrupted(f"{plan.name}: {reason}; saved — run the same `bihm repro` command again to continue")
    if reason.startswith("time budget"):
        st.state = "budget"
    return st


# -- comparison arithmetic ----------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """ours − thesis: the difference, in standard errors (ours and the thesis', added in
    quadrature; only ours where the thesis gives none) and in percent of |thesis|."""

    ours: float
    ours_se: float | None
    thesis: float | None
    thesis_se: float | None = None

    @property
    def diff(self) -> float | None:
        return None if self.thesis is None else self.ours - self.thesis

    @property
    def se(self) -> float | None:
        parts = [s for s in (self.ours_se, self.thesis_se) if s is not None and math.isfinite(s)]
        return math.sqrt(sum(s * s for s in parts)) if parts else None

    @property
    def diff_in_se(self) -> float | None:
        d, se = self.diff, self.se
        if d is None or se is None or se == 0:
            return None
        return d / se

    @property
    def percent(self) -> float | None:
        if self.thesis is None or self.thesis == 0:
            return None
        return 100.0 * self.diff / abs(self.thesis)

    def to_dict(self) -> dict:
        return {"ours": self.ours, "ours_se": self.ours_se, "thesis": self.thesis, "thesis_se": self.thesis_se,
                "diff": self.diff, "diff_in_se": self.diff_in_se, "percent": self.percent}  # fmt: skip


def uci_quantities(estimate: dict, z: dict | None) -> dict[str, tuple[float, float | None]]:
    """Table 3.1's columns from one test estimate and 2 log Z (means and SEs, nats):
    −log p̃*(x), −log p(x), −2 log Z and −log p*(x) = −log p̃*(x) + 2 log Z (SEs in quadrature)."""
    q = {
        "nll_ptilde": (-estimate["log_ptilde"], estimate.get("log_ptilde_se")),
        "nll_p": (-estimate["log_p"], estimate.get("log_p_se")),
    }
    if z is not None:
        q["nll_pstar"] = (-estimate["log_ptilde"] + z["mean"], math.hypot(estimate.get("log_ptilde_se") or 0.0, z["se"] or 0.0))
        q["neg_log_z2"] = (-z["mean"], z["se"])
    return q


def mnist_quantities(estimate: dict, z: dict | None) -> dict[str, tuple[float, float | None]]:
    """log p(x), log p̃*(x) and log p*(x) = log p̃*(x) − 2 log Z (SEs in quadrature)."""
    q = {"log_p": (estimate["log_p"], estimate.get("log_p_se")), "log_ptilde": (estimate["log_ptilde"], estimate.get("log_ptilde_se"))}
    if z is not None:
        q["log_pstar"] = (estimate["log_ptilde"] - z["mean"], math.hypot(estimate.get("log_ptilde_se") or 0.0, z["se"] or 0.0))
    return q


# -- results ------------------------------------------------------------------------------------
@dataclass
class GroupResult:
    """One UCI set or MNIST protocol: its runs, the selected one and its test evaluation."""

    group: str
    runs: list[RunState]
    selected: str | None = None
    provisional: bool = False  # some runs are still training elsewhere or were never trained
    estimates: list[dict] = field(default_factory=list)
    z: dict | None = None
    split_size: int = 0
    comparisons: dict[str, dict[str, Comparison]] = field(default_factory=dict)  # point label -> column -> cmp
    note: str = ""
    not_evaluated: str = ""  # why the test set was not evaluated (empty once it was)

    @property
    def selected_state(self) -> RunState | None:
        return next((r for r in self.runs if r.name == self.selected), None)

    def to_dict(self) -> dict:
        return {
            "group": self.group, "selected": self.selected, "provisional": self.provisional, "note": self.note,
            "runs": [r.to_dict() for r in self.runs], "test_points": self.split_size,
            "estimates": self.estimates, "log_z2": self.z,
            "comparisons": {p: {c: v.to_dict() for c, v in cols.items()} for p, cols in self.comparisons.items()},
        }  # fmt: skip


@dataclass
class ReproResult:
    kind: str  # "uci" or "mnist:<protocol>"
    groups: list[GroupResult]
    settings: EvalSettings
    budget_s: float | None

    def to_dict(self) -> dict:
        return {
            "kind": self.kind, "budget_s": self.budget_s,
            "evaluation": {"points": [list(p) for p in self.settings.points], "z_samples": self.settings.z_samples,
                           "z_inner": self.settings.z_inner, "seed": self.settings.seed,
                           "subset_seed": self.settings.seed},  # points < the split: a random subset (runner/subsets.py)
            "groups": [g.to_dict() for g in self.groups],
        }  # fmt: skip

    @property
    def evaluated(self) -> bool:
        """Some group has test-set estimates (else there is no comparison to show)."""
        return any(g.estimates for g in self.groups)

    def tables(self) -> list[Table]:
        """The training table, and the comparison with the thesis when something was evaluated."""
        return [training_table(self)] + ([comparison_table(self)] if self.evaluated else [])


def point_label(K: int, n: int, size: int) -> str:
    n_pts = size if n <= 0 else min(n, size)
    return f"K={K}" + ("" if n_pts == size else f" ({n_pts} random)")  # a seeded random subset (runner/subsets.py)


def _select(runs: list[RunState]) -> RunState | None:
    done = [r for r in runs if r.best_valid is not None and r.state != "missing"]
    return max(done, key=lambda r: r.best_valid) if done else None


def _evaluate_group(root: Path, g: GroupResult, settings: EvalSettings, device: str, progress: ProgressFactory,
                    quantities: Callable, refs: dict[str, tuple[float | None, float | None]]) -> None:  # fmt: skip
    res = evaluate_target(g.selected, root, settings.plan(), device=device, progress=progress)
    g.split_size = res.split_size
    g.estimates = res.estimates()
    g.z = res.z()
    for (K, n), est in zip(settings.points, g.estimates):
        label = point_label(K, n, res.split_size)
        q = quantities(est, g.z)
        g.comparisons[label] = {col: Comparison(m, se, *refs.get(col, (None, None))) for col, (m, se) in q.items()}


def run_uci(
    root: Path,
    sets: list[str],
    lrs: list[float] = list(DEFAULT_LRS),
    seeds: int = 1,
    budget_s: float | None = None,
    settings: EvalSettings | None = None,
    eval_only: bool = False,
    device: str = "auto",
    reporter: Callable[[RunPlan], Reporter] | None = None,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
    layers: dict[str, tuple[int, ...]] | None = None,
    overrides: dict | None = None,
) -> ReproResult:
    """Train (or adopt) every run of every set, select the better learning rate per set by its best
    validation log p̃*(x), evaluate it and compare with table 3.1.

    ``budget_s`` is per set, shared equally by its lrs × seeds runs. Raises :class:`Interrupted`
    when a run is stopped by a signal (everything is saved; call again to continue).
    """
    settings = settings or EvalSettings()
    log = log or (lambda s: None)
    reporter = reporter or (lambda plan: Reporter())
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if not lrs:
        raise ConfigError("give at least one learning rate")
    if budget_s is not None and budget_s <= 0:
        raise ConfigError(f"the budget must be positive, got {budget_s}")
    plans = uci_plans(sets, lrs, seeds, layers, overrides)
    groups = []
    for name, set_plans in plans.items():
        per_run = None if budget_s is None else budget_s / len(set_plans)
        states = [_state_only(root, p, per_run) if eval_only else _train_one(root, p, per_run, device, reporter(p), log)
                  for p in set_plans]  # fmt: skip
        g = GroupResult(name, states)
        _finish_group(root, g, settings, device, progress or no_progress, uci_quantities,
                      {c: (v, None) for c, v in thesis.UCI_TABLE_3_1.get(name, {}).items()}, log, eval_only)  # fmt: skip
        groups.append(g)
    return ReproResult("uci", groups, settings, budget_s)


def run_mnist(
    root: Path,
    protocol: str,
    seeds: int = 1,
    budget_s: float | None = None,
    settings: EvalSettings | None = None,
    eval_only: bool = False,
    device: str = "auto",
    reporter: Callable[[RunPlan], Reporter] | None = None,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
    overrides: dict | None = None,
    data: str = "bmnist",
    layers: tuple[int, ...] | None = None,
) -> ReproResult:
    """Train (or adopt) a binarized-MNIST protocol's runs (phases in order, each seed's budget
    shared by its phases), evaluate the last phase's best checkpoint at several K and compare
    with the thesis (``small`` is compared with the 12-layer net's numbers, for reference)."""
    settings = settings or EvalSettings(points=[(10, 0), (100, 0), (1000, 0), (10_000, 2000)])
    log = log or (lambda s: None)
    reporter = reporter or (lambda plan: Reporter())
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if budget_s is not None and budget_s <= 0:
        raise ConfigError(f"the budget must be positive, got {budget_s}")
    plans = mnist_plans(protocol, seeds, overrides, data, layers)
    per_seed = None if budget_s is None else budget_s / seeds
    states: list[RunState] = []
    for seed in range(seeds):
        used = 0.0
        parent_done = True
        for plan in (p for p in plans if p.seed == seed):
            left = None if per_seed is None else max(per_seed - used, 1e-9)
            if eval_only or not parent_done:
                st = _state_only(root, plan, left)
                if not parent_done and st.state == "missing":
                    st.note = f"waits for {plan.parent} to finish"
            else:
                st = _train_one(root, plan, left, device, reporter(plan), log)
            used += st.train_seconds
            parent_done = st.state == "finished"
            states.append(st)
    refs = thesis.MNIST_THESIS.get(protocol if protocol != "small" else "thesis12", {})
    g = GroupResult(f"mnist-{protocol}", states)
    # the last phase with a checkpoint is what the protocol produced
    finals = [s for s in states if s.best_valid is not None]
    last_phase = max((s.phase == "finetune" for s in finals), default=False)
    g.runs = states
    _finish_group(root, g, settings, device, progress or no_progress, mnist_quantities,
                  {c: (v.mean, v.se) for c, v in refs.items()}, log, eval_only,
                  candidates=[s for s in finals if (s.phase == "finetune") == last_phase])  # fmt: skip
    if protocol == "small" and not g.not_evaluated:  # said only where something was compared
        g.note = "no thesis number for this net: compared with the thesis' 12-layer net" + ("; " + g.note if g.note else "")
    return ReproResult(f"mnist:{protocol}", [g], settings, budget_s)


def _state_only(root: Path, plan: RunPlan, budget_s: float | None) -> RunState:
    st, _ = inspect_run(root, plan)
    st.budget_s = budget_s
    if st.state == "resumable" and budget_s is not None and st.train_seconds >= budget_s:
        st.state = "budget"
    return st


def _finish_group(root, g: GroupResult, settings, device, progress, quantities, refs, log, eval_only,
                  candidates=None) -> None:  # fmt: skip
    """Select the run with the best validation log p̃*(x) and evaluate it — in training mode only
    once no run of the group is still being trained elsewhere (its best.h5 would change)."""
    best = _select(candidates if candidates is not None else g.runs)
    pending = [r for r in g.runs if r.state in ("running", "missing", "new", "resumable")]
    g.provisional = bool(pending)
    if best is None:
        g.not_evaluated = "no run with a checkpoint yet: nothing to evaluate"
        g.note = (g.note + "; " if g.note else "") + g.not_evaluated  # the table's note and the last line say it
        return
    g.selected = best.name
    if pending:
        what = ", ".join(f"{r.name} ({r.state})" for r in pending)
        if not eval_only:
            g.not_evaluated = f"not evaluated yet: {what} not done (--eval-only evaluates what is there)"
            g.note = (g.note + "; " if g.note else "") + g.not_evaluated
            log(f"{g.group}: {g.note}")
            return
        g.note = (g.note + "; " if g.note else "") + f"provisional: {what} not done"
    log(f"{g.group}: evaluating {best.name} (best validation log p̃* {best.best_valid:.3f} at epoch {best.best_epoch})")
    _evaluate_group(root, g, settings, device, progress, quantities, refs)


# -- tables -------------------------------------------------------------------------------------
def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, fmt)


def epochs_done_cell(r: RunState) -> str:
    """'1/1000', or '1/1000 +328 batches' for a run stopped at batch 328 of its 2nd epoch (the CLI
    said "saved at epoch 2, batch 328/500"): epochs done, the words of runner/progress.py."""
    return f"{r.epoch}/{r.max_epochs}" + (f" +{r.batch} batches" if r.batch and r.epoch < r.max_epochs else "")


def training_table(result: ReproResult) -> Table:
    """Per run: state, epochs, best validation log p̃*(x) ± SE, training time; the selected run marked."""
    rows = []
    for g in result.groups:
        for r in g.runs:
            mark = "✓" if r.name == g.selected else ""
            reason = {"budget": "budget spent", "running": "training elsewhere", "missing": "not trained",
                      "new": "not trained", "resumable": "unfinished"}.get(r.state, r.stop_reason or r.state)  # fmt: skip
            rows.append([g.group, r.name, lr_label(r.lr), mark, _pm(r.best_valid, r.best_valid_se, 3),
                         "—" if r.best_epoch is None else str(r.best_epoch), epochs_done_cell(r), reason,
                         duration(r.train_seconds) if r.train_seconds else "—"])  # fmt: skip
    notes = ["✓: the run selected by its best validation log p̃*(x) (K = 10, the whole validation split)."]
    notes += [f"{g.group}: {g.note}" for g in result.groups if g.note]
    notes += [f"{r.name}: {r.note}" for g in result.groups for r in g.runs if r.note.startswith("trained with")]
    return Table("training", ["set" if result.kind == "uci" else "protocol", "run", "lr", "sel.", "best valid log p̃*(x)", "best epoch", "epochs done", "stopped by", "time"],
                 rows, notes, short={"best valid log p̃*(x)": "valid p̃*", "best epoch": "best", "stopped by": "stop", "epochs done": "done"},
                 drop={"time": 1, "best epoch": 2, "lr": 3, "stopped by": 4, "epochs done": 5}, key=2)  # fmt: skip


def comparison_table(result: ReproResult) -> Table:
    """One row per (set, quantity): thesis value, then ours ± SE, Δ in SEs and Δ % per (K, points)."""
    uci = result.kind == "uci"
    cols = thesis.UCI_COLUMNS if uci else (("log_p", "log p(x)"), ("log_ptilde", "log p̃*(x)"), ("log_pstar", "log p*(x)"))
    labels = []
    for g in result.groups:
        for lab in g.comparisons:
            if lab not in labels:
                labels.append(lab)
    header = ["set" if uci else "protocol", "quantity", "thesis"]
    for lab in labels:
        header += [f"ours {lab}", "Δ/SE", "Δ %"]
    rows = []
    for g in result.groups:
        for key, name in cols:
            ref = next((c[key] for c in g.comparisons.values() if key in c), None)
            if ref is None:
                continue
            row = [g.group, name, _pm(ref.thesis, ref.thesis_se)]
            for lab in labels:
                c = g.comparisons.get(lab, {}).get(key)
                row += [_pm(c.ours, c.ours_se), _num(c.diff_in_se, "+.1f"), _num(c.percent, "+.2f")] if c else ["—", "—", "—"]
            rows.append(row)
    sizes = {g.group: g.split_size for g in result.groups if g.split_size}
    s = result.settings
    notes = [
        "Δ = ours − thesis; Δ/SE divides it by the standard errors added in quadrature (ours: over test points, "
        "including the Monte-Carlo noise; the thesis gives none for UCI); Δ % is relative to |thesis|.",
        ("Negative log-likelihoods in nats: a negative Δ is better than the thesis." if uci
         else "Log-likelihoods in nats: a positive Δ is better than the thesis."),
        f"{z_samples_note(result)}; log p*(x) = log p̃*(x) − 2 log Z with the SEs added in quadrature.",
        "Test points: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()) + ".",
    ]  # fmt: skip
    if uci:
        notes.append("The thesis' table 3.1 rows are not internally consistent (−log p*(x) ≠ −log p̃*(x) + 2 log Z, "
                     "e.g. adult 13.79 − 0.20 ≠ 13.82): every column is compared on its own.")  # fmt: skip
        summary = within_two_percent(result)
        if summary:
            notes.append(summary)
    else:
        labels = dict(cols)
        for g in result.groups:
            protocol = g.group.split("-", 1)[1]
            refs = thesis.MNIST_THESIS.get(protocol, thesis.MNIST_THESIS["thesis12"])
            notes.append(f"Thesis ({protocol if protocol in thesis.MNIST_THESIS else '12-layer net, for reference'}): "
                         + "; ".join(f"{labels[k]} {_pm(v.mean, v.se)} ({v.note})" for k, v in refs.items()) + ".")  # fmt: skip
    return Table("test set against the thesis", header, rows, notes, short={"quantity": "qty"}, key=3, group=3)


def z_samples_note(result: ReproResult) -> str:
    """'2 log Z from 1,000,000 samples (inner 1)': the samples of the estimates in the table, which
    may be cached ones with more samples than ``--z-samples`` asked for (then it says so)."""
    s = result.settings
    used = sorted({(int(g.z["samples"]), int(g.z["inner"])) for g in result.groups if g.z is not None})
    if not used or used == [(s.z_samples, s.z_inner)]:
        return f"2 log Z from {s.z_samples:,} samples (inner {s.z_inner})"
    per = "; ".join(f"{g.group} {int(g.z['samples']):,}" for g in result.groups if g.z is not None)
    return (f"2 log Z from cached estimates with at least the {s.z_samples:,} samples asked for "
            f"(inner {s.z_inner}): {per} samples")


def within_two_percent(result: ReproResult) -> str:
    """'−log p*(x) within 2 % of the thesis (or better) on 3 of 5 sets (…)' at the first K."""
    hits, total = [], 0
    for g in result.groups:
        first = next(iter(g.comparisons.values()), {})
        c = first.get("nll_pstar")
        if c is None or c.thesis is None:
            continue
        total += 1
        if c.percent is not None and c.percent <= 2.0:
            hits.append(g.group)
    if not total:
        return ""
    return f"−log p*(x) within 2 % of the thesis or better on {len(hits)} of {total} sets" + (f" ({', '.join(hits)})." if hits else ".")
