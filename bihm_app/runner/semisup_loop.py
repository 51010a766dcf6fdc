"""A semi-supervised training run (thesis chapter 4): the training loop of
:class:`~bihm_app.runner.train_loop.TrainingRun` with a label layer, labelled + unlabelled
minibatches, and validation by classification.

Per epoch the validation split gives the classification error of argmax_y B̃(x, y) with its
standard error, log p̃*(y|x) and log p̃*(x) = 2 log Ã (K = ``valid_K``, y summed exactly in Ã),
and every ``z_every`` epochs 2 log Z of the labelled model. Early stopping watches the
validation error: a run stops after ``patience`` epochs without a strictly lower error, and
best.h5 holds the epoch with the lowest one. (The authors' code stopped on the validation
−log p̃*(y|x); the thesis does not say.)

Checkpoints add, to the BiHM's: the label parameters (``params/y_*``), the label config in
``config.model.labels``, the semi-supervised settings in ``config.semisup`` and the labelled
training indices in ``labels/train_indices`` (docs/checkpoint-format.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bihm_app.data.labelled import labelled_indices, labelled_per_batch, n_classes, num_semisup_batches, semisup_batches
from bihm_app.engine.semisup import LabelConfig, SemiBiHM, SemiTrainer, estimate_log_z2_labelled, evaluate_semisup
from bihm_app.errors import CheckpointError, ConfigError
from bihm_app.runner.compare import at_best_epoch
from bihm_app.runner.seeds import generator
from bihm_app.runner.train_loop import HISTORY_KEYS, TrainingRun

SEMI_HISTORY_KEYS = HISTORY_KEYS + ("valid_error", "valid_error_se", "valid_log_py", "valid_log_py_se")
INDICES_ARRAY = "labels/train_indices"


@dataclass
class SemiSpec:
    """What makes a run semi-supervised: N labelled points, where the label hangs, Ã's proposal, γ,
    how many labelled points each minibatch holds (the authors' code: 50 of 100) and the L2
    penalty of the label layer per labelled point (``--label-l2``; 0 = off, as in the thesis) and
    what the label-at-the-bottom layer reads (``--label-input``: x,h1 as in 4.6, or h1 only)."""

    n_labels: int = 1000
    placement: str = "top"
    proposal: str = "q"
    gamma: float = 0.0
    labelled_per_batch: int = 50
    label_l2: float = 0.0
    label_input: str = "x,h1"
    label_l2_x: float | None = None

    def __post_init__(self) -> None:
        try:
            LabelConfig(2, self.placement, self.proposal, self.gamma, self.label_l2, self.label_l2_x, self.label_input)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.labelled_per_batch < 1:
            raise ConfigError(f"--labelled-per-batch must be at least 1, got {self.labelled_per_batch}")

    def label_config(self, C: int) -> LabelConfig:
        """The engine's label layer for C classes (a data set whose labels are all one class: one line)."""
        if C < 2:
            raise ConfigError(f"--labels: the data set's labels hold {C} class{'es' if C != 1 else ''}; "
                              "a classifier needs at least 2")  # fmt: skip
        return LabelConfig(C, self.placement, self.proposal, self.gamma, self.label_l2, self.label_l2_x, self.label_input)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, config: dict) -> "SemiSpec | None":
        """The spec stored in a checkpoint's ``config`` (None for an unsupervised run)."""
        semi, labels = config.get("semisup"), (config.get("model") or {}).get("labels")
        if not isinstance(semi, dict) or not isinstance(labels, dict):
            return None
        return cls(
            n_labels=int(semi["n_labels"]),
            placement=labels["placement"],
            proposal=labels.get("proposal", "q"),
            gamma=float(labels.get("gamma", 0.0)),
            labelled_per_batch=int(semi.get("labelled_per_batch", 50)),
            label_l2=float(labels.get("l2", 0.0)),  # checkpoints before the option: no penalty
            label_input=str(labels.get("inputs", "x,h1")),  # … and a label layer that reads x and h_1
            label_l2_x=None if labels.get("l2_x") is None else float(labels["l2_x"]),
        )


class SemiTrainingRun(TrainingRun):
    """One start or resume of a semi-supervised run folder."""

    history_keys = SEMI_HISTORY_KEYS

    def __init__(self, run, spec, reporter=None, resume: bool = False, time_limit_s: float | None = None,
                 source=None) -> None:  # fmt: skip
        self.semi: SemiSpec = spec.semisup
        super().__init__(run, spec, reporter, resume, time_limit_s=time_limit_s, source=source)
        self.labelled = labelled_indices(self.ds, self.semi.n_labels, spec.train.seed)
        n_train = self.ds.size("train")
        self.per_batch = labelled_per_batch(spec.train.batch_size, self.semi.labelled_per_batch, len(self.labelled),
                                            n_train - len(self.labelled))  # fmt: skip

    @classmethod
    def preflight(cls, spec, ds) -> None:
        if spec.train.method != "bihm":
            raise ConfigError("semi-supervised training uses the BiHM objective (--method bihm)")
        if spec.train.precision != "fp32":  # SemiTrainer has no bf16 path: it would train in fp32 labelled bf16
            raise ConfigError(f"semi-supervised training runs in fp32 (--precision {spec.train.precision} is for unsupervised runs)")
        lab = labelled_indices(ds, spec.semisup.n_labels, spec.train.seed)
        labelled_per_batch(spec.train.batch_size, spec.semisup.labelled_per_batch, len(lab), ds.size("train") - len(lab))
        spec.semisup.label_config(n_classes(ds))  # a one-class label set is refused before the run folder is made

    # -- hooks ------------------------------------------------------------------------------------
    def build_model(self) -> SemiBiHM:
        if not hasattr(self, "label_cfg"):
            self.label_cfg = self.semi.label_config(n_classes(self.ds))
        return SemiBiHM(self.model_cfg, self.label_cfg, generator(self.spec.train.seed, "init"))

    def build_trainer(self, generator: torch.Generator) -> SemiTrainer:
        if self.spec.train.method != "bihm":
            raise ConfigError("semi-supervised training uses the BiHM objective (--method bihm)")
        return SemiTrainer(self.model, self.spec.train, generator)

    def batches_per_epoch(self) -> int:
        return num_semisup_batches(self.ds.size("train"), len(self.labelled), self.spec.train.batch_size, self.per_batch)

    def train_batches(self, epoch: int):
        cfg = self.spec.train
        return semisup_batches(self.ds, self.labelled, cfg.batch_size, self.per_batch, epoch=epoch, seed=cfg.seed,
                               device=self.device)  # fmt: skip

    def train_step(self, batch):
        x, y, lab = batch
        if self.world > 1:
            x, y, lab = x[self.rank :: self.world], y[self.rank :: self.world], lab[self.rank :: self.world]
        return self.trainer.step(x, y, lab), x.shape[0]

    def criterion(self, row: dict) -> float:
        return -row["valid_error"]

    def status_fields(self) -> dict:
        """Also the validation error of the epoch best.h5 holds (`bihm train`'s last line, every attempt)."""
        _, cells = at_best_epoch(self.history, ["valid_error"])
        return {"best_valid": self.status_best(), "best_error": cells.get("valid_error", (None, None))[0]}

    def status_best(self) -> float | None:
        # `bihm runs list` shows validation log p̃* (not the criterion, −error) of the epoch best.h5 holds
        _, cells = at_best_epoch(self.history, ["valid_log_ptilde"])
        return cells.get("valid_log_ptilde", (None, None))[0]

    # -- validation ---------------------------------------------------------------------------------
    def _valid_labelled_batches(self):
        x = self._valid_x()
        y = torch.from_numpy(np.asarray(self.ds.labels("valid"), dtype=np.int64))[: x.shape[0]].to(self.device)
        return list(zip(x.split(500), y.split(500)))

    def _valid_x(self):
        from bihm_app.data import as_tensor

        x = as_tensor(self.ds, "valid", device=self.device)
        return x[: self.spec.train.valid_max] if self.spec.train.valid_max else x

    def validate(self, epoch: int) -> dict:
        cfg = self.spec.train
        self.reporter.phase("validating")
        gen = generator(cfg.seed, "validation", self.device, index=epoch)
        ev = evaluate_semisup(self.model, self._valid_labelled_batches(), cfg.valid_K, gen, proposal="sum",
                              progress=self.poll_stop)  # fmt: skip
        row = {
            "valid_log_ptilde": ev.log_ptilde.mean,
            "valid_log_ptilde_se": ev.log_ptilde.se,
            "valid_log_p": math.nan,
            "valid_log_p_se": math.nan,
            "ess": math.nan,
            "log_z2": math.nan,
            "log_z2_se": math.nan,
            "valid_log_pstar": math.nan,
            "valid_error": ev.error.mean,
            "valid_error_se": ev.error.se,
            "valid_log_py": ev.log_py.mean,
            "valid_log_py_se": ev.log_py.se,
        }
        if cfg.z_samples and (epoch + 1) % max(1, cfg.z_every) == 0:
            self.reporter.phase("estimating 2 log Z")
            z = estimate_log_z2_labelled(self.model, cfg.z_samples, generator(cfg.seed, "z", self.device, index=epoch),
                                         progress=self.poll_stop)  # fmt: skip
            row.update(log_z2=z.mean, log_z2_se=z.se, valid_log_pstar=ev.log_ptilde.mean - z.mean)
        return row

    # -- checkpoints --------------------------------------------------------------------------------
    def meta(self) -> dict:
        meta = super().meta()
        meta["config"]["model"]["labels"] = self.label_cfg.to_dict()
        meta["config"]["semisup"] = {**self.semi.to_dict(), "n_classes": self.label_cfg.n_classes}
        return meta

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = super()._arrays()
        arrays[INDICES_ARRAY] = self.labelled
        return arrays

    def restore(self, path) -> None:
        from bihm_app.store.checkpoint import Checkpoint, load_checkpoint

        ck = path if isinstance(path, Checkpoint) else load_checkpoint(path, within=self.run.path)
        path = ck.path
        stored = (ck.meta.get("config", {}).get("model") or {}).get("labels")
        if not isinstance(stored, dict):
            raise CheckpointError(f"checkpoint {path}: not a semi-supervised checkpoint (no label layer)")
        if LabelConfig.from_dict(stored) != self.label_cfg:
            raise CheckpointError(f"checkpoint {path}: its label layer {stored} differs from this run's")
        if INDICES_ARRAY in ck.arrays and not np.array_equal(np.asarray(ck.arrays[INDICES_ARRAY]), self.labelled):
            raise CheckpointError(f"checkpoint {path}: its labelled training points differ from this run's selection")
        super().restore(ck)
