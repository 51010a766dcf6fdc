"""A training run from start to finish: data, epochs, validation, 2 log Z, early stopping,
checkpoints, live metrics, resume, Ctrl-C/SIGTERM and the divergence guard.

UI-agnostic: the loop emits events (update, epoch, stopped, rolled back, crashed, finish) to
reporters (``runner/reporters.py``): the metrics file and status.json on rank 0, the front-end's
own (the CLI's Rich progress bar) everywhere.
Exactness of resume rests on three things: the data order and binarisation depend only on
(seed, epoch); the training generator's state is checkpointed; validation and 2 log Z use their
own generators seeded from (seed, epoch).
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bihm_app import __version__
from bihm_app.data import as_tensor, batches, check_compatible, load_dataset
from bihm_app.engine.estimators import estimate_log_z2, evaluate
from bihm_app.engine.model import BiHM, ModelConfig, resolve_device
from bihm_app.engine.training import Trainer, TrainConfig
from bihm_app.errors import BihmError, CheckpointError, ConfigError, DiskFull, RunError, TrainingDiverged
from bihm_app.runner.budget import check_training_fits
from bihm_app.runner.compare import at_best_epoch, best_by
from bihm_app.runner.configs import DATA, LAYERS, TRAIN, layer_sizes
from bihm_app.runner.naming import run_name_stem
from bihm_app.runner.progress import epochs_done_text, position_text
from bihm_app.runner.reporters import Reporter, reporters_for
from bihm_app.runner.seeds import derive_seed, generator
from bihm_app.runner.threads import configure_threads
from bihm_app.store.checkpoint import Checkpoint, load_checkpoint, read_meta, save_checkpoint
from bihm_app.store.metrics import compact_metrics
from bihm_app.store.runs import RunFolder, new_run, open_run

HISTORY_KEYS = (
    "epoch", "step", "time", "train_objective", "valid_log_ptilde", "valid_log_ptilde_se", "valid_log_p",
    "valid_log_p_se", "log_z2", "log_z2_se", "valid_log_pstar", "ess", "lr",
)  # fmt: skip


@dataclass
class RunSpec:
    """What to train: data set, architecture, training config, device, run name."""

    data: str = DATA
    layers: tuple[int, ...] = field(default_factory=lambda: layer_sizes(LAYERS))
    train: TrainConfig = field(default_factory=lambda: replace(TRAIN))
    device: str = "auto"
    name: str | None = None
    # start from the parameters of this checkpoint (a fine-tuning phase) instead of a fresh
    # initialisation; recorded in the checkpoint config as {"path", "params_sha256"}
    init_from: dict | None = None
    semisup: Any = None  # a runner.semisup_loop.SemiSpec for a semi-supervised run (chapter 4)
    threads: str = "auto"  # intra-op threads: auto (size of the work and the machine's load) or N


@dataclass
class Progress:
    """Where a run stands (checkpointed): the epoch in progress and the batches of it done."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_valid: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    rollbacks: int = 0
    elapsed: float = 0.0
    finished: bool = False
    stop_reason: str = ""

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["best_valid"] = None if not math.isfinite(self.best_valid) else self.best_valid
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Progress":
        p = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        if p.best_valid is None:
            p.best_valid = -math.inf
        return p


#: The stop "signal" a time budget raises (handled like SIGTERM: save, then return).
BUDGET = "time budget"


class _StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after every update; a second Ctrl-C raises.

    :meth:`request` sets the same flag from inside the process (the time budget).
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict = {}

    def request(self, name: str) -> None:
        if self.signal is None:
            self.signal = name

    def __enter__(self) -> "_StopFlag":
        if _in_main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _ValidationStopped(Exception):
    """A stop signal arrived during the end-of-epoch estimates (raised from their progress callback)."""


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _dist_info() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(device: str = "auto") -> tuple[int, int]:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1); returns (rank, world).

    NCCL when CUDA is used, gloo on CPU. A no-op for a plain single-process launch.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not torch.distributed.is_available():
        return 0, 1
    if not torch.distributed.is_initialized():
        use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _dist_info()


def _broadcast(obj):
    """Rank 0's value of a picklable object on every rank (identity when not distributed)."""
    rank, world = _dist_info()
    if world == 1:
        return obj
    box = [obj if rank == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


class TrainingRun:
    """One start or resume of a run folder.

    Subclasses (the semi-supervised run) override the hooks ``history_keys``, ``build_model``,
    ``build_trainer``, ``train_batches``, ``train_step``, ``validate``, ``criterion`` and
    ``status_best``.
    """

    history_keys: tuple[str, ...] = HISTORY_KEYS

    def __init__(self, run: RunFolder, spec: RunSpec, reporter: Reporter | None = None, resume: bool = False,
                 time_limit_s: float | None = None, source: Checkpoint | None = None) -> None:  # fmt: skip
        self.run = run
        self.spec = spec
        self.resume = resume
        self.stop_signal: str | None = None
        self._stop: _StopFlag | None = None  # the loop's, for the end-of-epoch estimates' progress callback
        # stop cleanly (as on SIGTERM) once the run's cumulative training time reaches this
        self.time_limit_s = time_limit_s
        self.source = source  # the checkpoint a resume continues from (already loaded and checked)
        self.last_good: Path | None = source.path if source is not None else None
        try:
            self.device = resolve_device(spec.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        rank, world = _dist_info()
        if world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        self.rank, self.world = rank, world
        self.reporter = reporters_for(self, reporter)  # the run's files on rank 0, the front-end's everywhere
        self.ds = load_dataset(spec.data)
        self.model_cfg = ModelConfig(self.ds.dim, tuple(spec.layers))
        cfg = spec.train
        check_training_fits(self.model_cfg, cfg, self.device)  # before anything is allocated
        self.model = self.build_model().to(self.device)
        # each rank draws its own samples (rank 0's stream is the single-process one)
        self.trainer = self.build_trainer(generator(cfg.seed, "training", self.device, rank=rank))
        if spec.init_from and not resume:
            self._load_initial_parameters(Path(spec.init_from["path"]))
        self.progress = Progress()
        self.history: dict[str, list] = {k: [] for k in self.history_keys}
        self.threads = self.set_threads()

    def set_threads(self) -> int:
        """Apply the thread policy (runner/threads.py) for this run's step size; re-checked every epoch."""
        if self.device.type != "cpu":
            return 0
        rows = max(1, self.spec.train.batch_size // self.world) * self.spec.train.K
        return configure_threads(self.spec.threads, self.model_cfg.sizes, rows).threads

    # -- hooks ------------------------------------------------------------------------------------
    def build_model(self) -> BiHM:
        """The freshly initialised model (seeded by the config's seed)."""
        return BiHM(self.model_cfg, generator(self.spec.train.seed, "init"))

    def build_trainer(self, generator: torch.Generator) -> Trainer:
        return Trainer(self.model, self.spec.train, generator)

    def batches_per_epoch(self) -> int:
        return math.ceil(self.ds.size("train") / self.spec.train.batch_size)

    def train_batches(self, epoch: int):
        """The minibatches of one epoch, in an order that depends only on (seed, epoch)."""
        cfg = self.spec.train
        return batches(self.ds, "train", cfg.batch_size, epoch=epoch, seed=cfg.seed, shuffle=True, device=self.device)

    def train_step(self, batch) -> tuple[Any, int]:
        """One update on this rank's share of ``batch``: (step result with .objective/.finite, points)."""
        xb = batch[self.rank :: self.world] if self.world > 1 else batch
        return self.trainer.step(xb), xb.shape[0]

    @classmethod
    def preflight(cls, spec: RunSpec, ds) -> None:
        """Raise a one-line error before a run folder is created if ``spec`` cannot run on ``ds``."""

    def criterion(self, row: dict) -> float:
        """The early-stopping criterion of an epoch's row (higher is better)."""
        return row["valid_log_ptilde"] if self.spec.train.method == "bihm" else row["valid_log_p"]

    def status_fields(self) -> dict:
        """What status.json says about the run's best epoch (the epoch best.h5 holds, every attempt)."""
        return {"best_valid": self.status_best()}

    def status_best(self) -> float | None:
        """The ``best_valid`` written to status.json: validation log p̃* of the epoch best.h5 holds
        (`bihm runs list`'s "best log p~*"; an RWS run's criterion is log p, not shown there)."""
        if self.spec.train.method == "bihm":
            return self.progress.to_dict()["best_valid"]
        _, cells = at_best_epoch(self.history, ["valid_log_ptilde"], best_by(self.spec.train.method))
        return cells.get("valid_log_ptilde", (None, None))[0]

    def _load_initial_parameters(self, path: Path) -> None:
        """Copy the parameters of another run's checkpoint (same architecture) into the model."""
        ck = load_checkpoint(path)
        if ck.model_config() != self.model_cfg:
            raise RunError(f"checkpoint {path}: its architecture {ck.meta['config']['model']} differs from this run's")
        with torch.no_grad():
            params = ck.params()
            for name, p in self.model.named_parameters():
                p.copy_(torch.from_numpy(np.asarray(params[name])))

    # -- checkpoint meta -------------------------------------------------------------------------
    def meta(self) -> dict:
        config = {
            "model": self.model_cfg.to_dict(),
            "train": self.spec.train.to_dict(),
            "data": self.spec.data,
            "device": self.spec.device,
        }
        if self.spec.init_from:
            config["init_from"] = dict(self.spec.init_from)
        return {
            "config": config,
            "data": {"name": self.ds.name, "sha256": self.ds.sha256, "dim": self.ds.dim},
            "progress": self.progress.to_dict(),
            "history": self.history,
            "lr": self.trainer.lr,
            "run": self.run.name,
            "package_version": __version__,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.trainer.state().items()}

    def save(self, best: bool = False) -> None:
        if self.rank != 0:
            return
        arrays, meta = self._arrays(), self.meta()
        save_checkpoint(self.run.checkpoint_path, arrays, meta)
        self.last_good = self.run.checkpoint_path
        if best:
            save_checkpoint(self.run.best_path, arrays, meta)

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def restore(self, path: Path | Checkpoint) -> None:
        ck = path if isinstance(path, Checkpoint) else load_checkpoint(path, within=self.run.path)
        path = ck.path
        cfg = ck.meta.get("config", {})
        if ModelConfig.from_dict(cfg["model"]) != self.model_cfg:
            raise RunError(f"checkpoint {path}: its architecture {cfg['model']} differs from this run's")
        check_compatible(self.ds, self.model_cfg.n_visible, f"checkpoint {path}")
        if ck.meta.get("data", {}).get("sha256") not in (None, self.ds.sha256):
            self.reporter.message(f"note: data set {self.ds.name} changed since {path.name} was written (SHA-256 differs)")
        try:
            self.trainer.load_state({k: torch.from_numpy(np.asarray(v)) for k, v in ck.arrays.items()}, lr=ck.meta.get("lr"))
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from None
        if self.rank > 0:  # the checkpoint holds rank 0's stream; other ranks derive theirs
            self.trainer.generator.manual_seed(derive_seed(self.spec.train.seed, "training", rank=self.rank, index=self.trainer.step_count))
        self.progress = Progress.from_dict(ck.meta.get("progress", {}))
        hist = ck.meta.get("history", {})
        self.history = {k: list(hist.get(k, [])) for k in self.history_keys}

    # -- the loop --------------------------------------------------------------------------------
    def _valid_batches(self):
        x = as_tensor(self.ds, "valid", device=self.device)
        if self.spec.train.valid_max:
            x = x[: self.spec.train.valid_max]
        return x.split(500)

    def validate(self, epoch: int) -> dict:
        cfg = self.spec.train
        self.reporter.phase("validating")
        gen = generator(cfg.seed, "validation", self.device, index=epoch)
        est = evaluate(self.model, self._valid_batches(), cfg.valid_K, gen, progress=self.poll_stop)
        row = {
            "valid_log_ptilde": est.log_ptilde.mean,
            "valid_log_ptilde_se": est.log_ptilde.se,
            "valid_log_p": est.log_p.mean,
            "valid_log_p_se": est.log_p.se,
            "ess": est.ess.mean,
            "log_z2": math.nan,
            "log_z2_se": math.nan,
            "valid_log_pstar": math.nan,
        }
        if cfg.z_samples and (epoch + 1) % max(1, cfg.z_every) == 0:
            self.reporter.phase("estimating 2 log Z")
            z = estimate_log_z2(self.model, cfg.z_samples, generator(cfg.seed, "z", self.device, index=epoch),
                                progress=self.poll_stop)  # fmt: skip
            row.update(log_z2=z.mean, log_z2_se=z.se, valid_log_pstar=est.log_ptilde.mean - z.mean)
        return row

    def poll_stop(self, _done: int = 0) -> None:
        """Progress callback of the end-of-epoch estimates: after Ctrl-C / SIGTERM they end early (a
        large ``--z-samples`` ignored the signal for minutes) and the loop saves the epoch's updates.
        One process only: torchrun ranks must all finish the same collectives."""
        if self._stop is not None and self._stop.signal and self.world == 1:
            raise _ValidationStopped

    def execute(self) -> str:
        """Train until early stopping, the epoch limit, or a stop signal. Returns the stop reason."""
        run, cfg = self.run, self.spec.train
        if self.resume:
            self.restore(self.source if self.source is not None else run.checkpoint_path)
            if self.progress.finished:
                if not self._can_continue():
                    raise RunError(
                        f"run {run.name} already finished ({self.progress.stop_reason}); "
                        "raise --epochs or --patience to continue it"
                    )
                self.progress.finished = False
        per_epoch = self.batches_per_epoch()
        if self.rank == 0:  # this process holds the run lock; other torchrun ranks would delete rank 0's temp files
            run.sweep_temp_files()
            try:
                compact_metrics(run.path)
            except BihmError as exc:
                self.reporter.message(f"warning: old metrics files were not compacted ({exc})")
        stop = _StopFlag()
        with stop:  # from here on, Ctrl-C / SIGTERM request a clean save instead of killing
            try:
                self.reporter.start(run, cfg.epochs, self.progress.epoch, per_epoch, self.resume)
                reason = self._loop(stop, per_epoch, time.time() - self.progress.elapsed)
            except BaseException as exc:
                if isinstance(exc, DiskFull):  # say what survived: the last checkpoint and whether it is whole
                    exc = DiskFull(f"{exc}; {self._checkpoint_state()}")
                self.reporter.crashed(exc)  # status.json: crashed / diverged / stopped, with the message
                if isinstance(exc, DiskFull):
                    raise exc from None
                raise
            finally:
                self.reporter.close()
        self._check_ranks_agree()
        self.stop_signal = stop.signal
        self.reporter.finish(reason)
        return reason

    def _checkpoint_state(self) -> str:
        """What a reader of an error message may rely on: the last checkpoint and whether it is whole."""
        for path in (self.run.checkpoint_path, self.run.best_path):
            if os.path.lexists(path):
                try:
                    read_meta(path, within=self.run.path)
                except BihmError as exc:
                    return f"the last checkpoint is damaged ({exc})"
                return f"the last checkpoint {path} is intact"
        return "no checkpoint was written yet"

    def _check_ranks_agree(self) -> None:
        """Under torchrun every rank must hold the same parameters (all-reduced gradients, same Adam)."""
        if self.world == 1:
            return
        digest = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).cpu()
        gathered = [torch.zeros_like(digest) for _ in range(self.world)]
        torch.distributed.all_gather_object(gathered, digest)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise TrainingDiverged("data-parallel ranks ended with different parameters")

    def _can_continue(self) -> bool:
        p, cfg = self.progress, self.spec.train
        return p.epoch < cfg.epochs and (cfg.patience == 0 or p.bad_epochs < cfg.patience)

    def _loop(self, stop: _StopFlag, per_epoch: int, t_start: float) -> str:
        cfg = self.spec.train
        self._stop = stop
        while self.progress.epoch < cfg.epochs:
            p = self.progress  # (a rollback replaces it)
            epoch = p.epoch
            if self.spec.threads == "auto":
                self.threads = self.set_threads()  # the load may have changed since the last epoch
            obj_sum, obj_n = 0.0, 0
            self.reporter.phase("training")
            diverged = False
            stream = self.train_batches(epoch)
            for batch in itertools.islice(stream, p.batch, None):  # resume mid-epoch: same order, skip what was done
                res, n_points = self.train_step(batch)
                if not res.finite:
                    diverged = True
                    break
                obj = float(res.objective.mean())
                obj_sum += obj * n_points
                obj_n += n_points
                p.step += 1
                p.batch += 1
                p.elapsed = time.time() - t_start
                self.reporter.update(p.step, p.batch, obj)
                self._check_budget(stop)
                if stop.signal:
                    if self.params_finite():  # never save NaN/inf parameters
                        self.save()
                        self.reporter.message(f"{stop.signal}: saved at {position_text(p.epoch, p.batch, cfg.epochs, per_epoch)} "
                                              f"({epochs_done_text(p.epoch, cfg.epochs)})")  # fmt: skip
                    else:
                        self.reporter.message(f"{stop.signal}: parameters are not finite; kept the last checkpoint")
                    self.reporter.stopped(stop.signal)
                    return self._stop_reason(stop)
            if diverged:
                self._rollback()
                continue
            # -- end of epoch: validation, 2 log Z, early stopping, checkpoints -----------------
            try:
                row = self.validate(epoch)
            except _ValidationStopped:
                return self._stopped_in_validation(stop, per_epoch)
            row.update(epoch=epoch + 1, step=p.step, time=time.time() - t_start, lr=self.trainer.lr,
                       train_objective=obj_sum / obj_n if obj_n else math.nan)  # fmt: skip
            criterion = self.criterion(row)
            if not math.isfinite(criterion) or not self.params_finite():  # never save NaN/inf parameters
                self._rollback()
                continue
            improved = criterion > p.best_valid
            if improved:
                p.best_valid, p.best_epoch, p.bad_epochs = criterion, epoch + 1, 0
            else:
                p.bad_epochs += 1
            p.epoch, p.batch, p.elapsed = epoch + 1, 0, row["time"]
            for k in self.history_keys:
                self.history[k].append(_jsonable(row.get(k, math.nan)))
            done_early = cfg.patience > 0 and p.bad_epochs >= cfg.patience
            if done_early or p.epoch >= cfg.epochs:
                p.finished = True
                p.stop_reason = "early stopping" if done_early else "epoch limit"
            self.save(best=improved)
            self.reporter.epoch(row, improved)
            if done_early:
                return f"early stopping: no improvement for {cfg.patience} epochs (best epoch {p.best_epoch})"
            self._check_budget(stop)
            if stop.signal and not p.finished:
                self.reporter.stopped(stop.signal)
                return self._stop_reason(stop)
        return f"epoch limit {cfg.epochs} reached"

    def _stopped_in_validation(self, stop: _StopFlag, per_epoch: int) -> str:
        """Save the epoch's updates (every batch done, the epoch not yet counted): a resume skips to
        the validation and repeats it."""
        p, cfg = self.progress, self.spec.train
        if self.params_finite():
            self.save()
            self.reporter.message(f"{stop.signal}: saved at {position_text(p.epoch, p.batch, cfg.epochs, per_epoch)}, "
                                  f"its validation interrupted (a resume repeats it; "
                                  f"{epochs_done_text(p.epoch, cfg.epochs)})")  # fmt: skip
        else:
            self.reporter.message(f"{stop.signal}: parameters are not finite; kept the last checkpoint")
        self.reporter.stopped(stop.signal)
        return self._stop_reason(stop)

    def _check_budget(self, stop: _StopFlag) -> None:
        if self.time_limit_s is not None and self.progress.elapsed >= self.time_limit_s:
            stop.request(BUDGET)

    def _stop_reason(self, stop: _StopFlag) -> str:
        if stop.signal == BUDGET:
            return f"time budget of {self.time_limit_s:.0f} s of training reached"
        return f"signal {stop.signal}"

    def _rollback(self) -> None:
        """Divergence guard: back to the last good checkpoint with half the learning rate."""
        p, cfg = self.progress, self.spec.train
        rollbacks = p.rollbacks + 1
        good = self.last_good if self.last_good is not None and self.last_good.exists() else None
        if rollbacks > cfg.max_rollbacks:
            where = (f"the last good state is in {good}" if good is not None else
                     "no checkpoint was saved before it diverged (the run has no good state to resume)")  # fmt: skip
            raise TrainingDiverged(
                f"training diverged (NaN/inf) {rollbacks} times despite halving the learning rate; {where}"
            )
        lr = self.trainer.lr / 2
        if good is not None:
            self.restore(good)
        else:  # diverged before the first checkpoint: start over from the initial parameters
            self.model.load_state_dict(self.build_model().state_dict())
            self.trainer = self.build_trainer(generator(cfg.seed, "rollback", self.device, index=rollbacks))
            self.progress = Progress(elapsed=p.elapsed)
        self.progress.rollbacks = rollbacks
        self.trainer.set_lr(lr)
        # a different random stream after the rollback, so the same blow-up is not replayed
        self.trainer.generator.manual_seed(derive_seed(cfg.seed, "rollback", index=rollbacks))
        done, batch = self.progress.epoch, self.progress.batch
        where = f"epoch {done + 1}, batch {batch}" if batch else (f"the end of epoch {done}" if done else "the start")
        msg = f"NaN/inf detected: rolled back to {where} ({epochs_done_text(self.progress.epoch, cfg.epochs)}), learning rate halved to {lr:.3g}"
        self.reporter.message(msg)
        self.reporter.rolled_back(msg)


def _jsonable(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _run_class(spec: RunSpec) -> type[TrainingRun]:
    """TrainingRun, or the semi-supervised run when the spec has labels."""
    if spec.semisup is None:
        return TrainingRun
    from bihm_app.runner.semisup_loop import SemiTrainingRun

    return SemiTrainingRun


def start_run(root: Path, spec: RunSpec, reporter: Reporter | None = None, time_limit_s: float | None = None,
              run: RunFolder | None = None) -> tuple[RunFolder, str]:  # fmt: skip
    """Create a run folder and train in it, holding its lock. Returns (run, stop reason).

    ``run``: train in this existing, empty run folder (one that stopped before its first
    checkpoint) instead of creating one. ``time_limit_s``: stop cleanly, as on SIGTERM, once the
    run has trained this long.
    """
    ds_name = spec.data
    ds = load_dataset(ds_name)  # fail before creating the folder if the data set is unknown/corrupt
    run_cls = _run_class(spec)
    run_cls.preflight(spec, ds)  # … or the run cannot work on it
    try:
        check_training_fits(ModelConfig(ds.dim, tuple(spec.layers)), spec.train, resolve_device(spec.device))  # … or too big
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    rank, _ = init_distributed(spec.device)
    lock = None
    if rank == 0:
        if run is None:
            run = new_run(root, spec.name, stem=None if spec.name else run_name_stem(ds_name, spec.layers))
        lock = run.lock()  # before anything is written into the folder
    try:
        run = RunFolder(Path(_broadcast(str(run.path) if rank == 0 else None)))
        tr = run_cls(run, spec, reporter, time_limit_s=time_limit_s)
        return run, tr.execute()
    except (KeyboardInterrupt, SystemExit) as exc:
        if lock is not None:
            _stopped_while_starting(run, exc)
        raise
    finally:
        if lock is not None:
            lock.release()


def _stopped_while_starting(run: RunFolder, exc: BaseException) -> None:
    """A SIGINT (KeyboardInterrupt) or SIGTERM (``bihm``'s handler: SystemExit 143) before training
    started (the dashboard's Stop of a run still building its model): status.json says "stopped"
    instead of "created", which would read as crashed once the lock is released."""
    sig = "SIGINT" if isinstance(exc, KeyboardInterrupt) else "SIGTERM" if getattr(exc, "code", None) == 143 else None
    try:
        if sig is not None and run.read_status().get("state") == "created":
            run.write_status("stopped", message=f"stopped by {sig} before its first checkpoint")
    except BihmError:
        pass  # the signal is what this process reports; an unwritable status stays "created" (read as crashed)


def resume_source(run: RunFolder, reporter: Reporter | None = None) -> Checkpoint:
    """The checkpoint a resume continues from: ``checkpoint.h5``, or ``best.h5`` (with a warning)
    when the latest one is missing, damaged or holds non-finite parameters."""
    reporter = reporter or Reporter()
    latest, best = run.checkpoint_path, run.best_path
    if not os.path.lexists(latest) and not os.path.lexists(best):
        raise RunError(f"run {run.path}: no checkpoint to resume from (it stopped before the first save)")
    problem = None
    if os.path.lexists(latest):
        try:
            return load_checkpoint(latest, within=run.path)
        except CheckpointError as exc:
            problem = str(exc)
            if not os.path.lexists(best):
                raise
    try:
        ck = load_checkpoint(best, within=run.path)
    except CheckpointError as exc:
        raise CheckpointError(f"{problem}; and {exc}" if problem else str(exc)) from None
    if problem:
        reporter.message(f"warning: {problem}; resuming from best.h5 (epoch {ck.meta['progress']['epoch']}) instead")
    else:
        reporter.message(f"warning: {latest.name} is missing; resuming from best.h5 (epoch {ck.meta['progress']['epoch']})")
    return ck


def spec_from_meta(meta: dict, where: str, name: str, overrides: dict | None = None) -> RunSpec:
    """The RunSpec a checkpoint's meta describes, validated by the same config classes as the CLI."""
    overrides = overrides or {}
    try:
        cfg = meta["config"]
        if not isinstance(cfg.get("train"), dict):
            raise ValueError("config.train is missing or not an object")
        # TrainConfig is frozen: replace() validates again (a resume cannot set epochs or patience out of range)
        train = replace(TrainConfig.from_dict(cfg["train"]),
                        **{k: overrides[k] for k in ("epochs", "patience") if overrides.get(k) is not None})  # fmt: skip
        data = cfg.get("data") or meta["data"]["name"]
        device = overrides.get("device") or cfg.get("device", "auto")
        if not isinstance(data, str) or not isinstance(device, str):
            raise ValueError("config.data and config.device must be strings")
        layers = tuple(ModelConfig.from_dict(cfg["model"]).layers)
        semisup = None
        if isinstance((cfg.get("model") or {}).get("labels"), dict):
            from bihm_app.runner.semisup_loop import SemiSpec

            semisup = SemiSpec.from_meta(cfg)
        init_from = cfg.get("init_from")
        if init_from is not None and not isinstance(init_from, dict):
            raise ValueError("config.init_from must be an object")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{where}: its training config is invalid ({exc})") from None
    return RunSpec(data=data, layers=layers, train=train, device=device, name=name, init_from=init_from,
                   semisup=semisup, threads=str(overrides.get("threads") or "auto"))  # fmt: skip


def resume_run(root: Path, name_or_path: str, reporter: Reporter | None = None, overrides: dict | None = None,
               time_limit_s: float | None = None) -> tuple[RunFolder, str]:  # fmt: skip
    """Continue a run from its latest checkpoint (or best.h5 when that is damaged), with the
    config stored there, holding the run lock.

    ``overrides`` may raise ``epochs``/``patience`` or change ``device`` or ``threads``;
    ``time_limit_s`` stops it cleanly once its cumulative training time reaches that many seconds.
    """
    init_distributed((overrides or {}).get("device") or "auto")
    run = open_run(name_or_path, root)
    rank, _ = _dist_info()
    lock = run.lock() if rank == 0 else None  # a second trainer stops here, naming the holder
    try:
        ck = resume_source(run, reporter)
        spec = spec_from_meta(ck.meta, f"checkpoint {ck.path}", run.name, overrides)
        tr = _run_class(spec)(run, spec, reporter, resume=True, time_limit_s=time_limit_s, source=ck)
        return run, tr.execute()
    finally:
        if lock is not None:
            lock.release()
