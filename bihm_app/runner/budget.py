"""How much memory a model needs, estimated from its layer sizes before anything is allocated.

``bihm train --layers 100000,100000`` (or a checkpoint whose meta says so) would otherwise
allocate tens of gigabytes before the first check; here it is refused with one line.
"""

from __future__ import annotations

import torch

from bihm_app.data.limits import available_memory

from bihm_app.engine.model import ModelConfig, parameter_shapes
from bihm_app.engine.training import TrainConfig
from bihm_app.errors import ConfigError

#: float32 copies of the parameters while training: values, gradients, Adam's two moments, and a
#: spare for the fused update and a rollback.
TRAIN_COPIES = 5
#: float32 tensors of shape (B, K, n_l) alive at once per latent layer in a training step or an
#: estimate (samples, logits, probabilities, residuals …) — a generous bound.
ACTIVATION_COPIES = 8
VALID_BATCH = 500


def n_parameters(cfg: ModelConfig) -> int:
    """Number of parameters of a BiHM with this config (eq. 2.1/2.2 weights and biases of p and q)."""
    total = 0
    for shape in parameter_shapes(cfg).values():
        n = 1
        for d in shape:
            n *= int(d)
        total += n
    return total


def training_bytes(model: ModelConfig, train: TrainConfig, itemsize: int = 4) -> int:
    """A generous estimate of the memory one training process needs (parameters and activations)."""
    units = sum(model.sizes)
    rows = max(train.batch_size * train.K, VALID_BATCH * train.valid_K)
    return itemsize * (TRAIN_COPIES * n_parameters(model) + ACTIVATION_COPIES * rows * units)


def available_bytes(device: torch.device) -> int | None:
    """Memory free for this process on ``device`` (None where it cannot be told)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    return available_memory()


_UNITS = ("kB", "MB", "GB", "TB", "PB", "EB")


def _gb(n: int) -> str:
    """A size for a person: '1.2 GB', '410 PB', '3.0e+24 bytes' (decimal units, 2-3 figures)."""
    if n < 1e3:
        return f"{int(n)} bytes"
    for i, unit in enumerate(_UNITS, start=1):
        value = n / 10 ** (3 * i)
        if value < 1e3 or unit == _UNITS[-1] and value < 1e6:
            return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{float(n):.1e} bytes"


def _culprit(model: ModelConfig, train: TrainConfig) -> str:
    """What to make smaller when training does not fit: the option whose samples dominate the
    estimate (-K and --batch, the validation's --valid-k) or the layers."""
    params = TRAIN_COPIES * n_parameters(model)
    step, valid = train.batch_size * train.K, VALID_BATCH * train.valid_K
    if ACTIVATION_COPIES * max(step, valid) * sum(model.sizes) <= params:
        return "use smaller layers"
    if valid > step:
        return f"--valid-k {train.valid_K:,} is too large ({VALID_BATCH} validation points × {train.valid_K:,} samples)"
    big = f"-K {train.K:,}" if train.K >= train.batch_size else f"--batch {train.batch_size:,}"
    return f"{big} is too large (--batch {train.batch_size:,} × -K {train.K:,} = {step:,} samples per step)"


def check_model_fits(model: ModelConfig, device: torch.device) -> int:
    """Raise ConfigError (one line) when the parameters alone of ``model`` cannot fit on ``device``
    (for a fresh model that is sampled, not trained). Returns the estimate in bytes."""
    need = 4 * 2 * n_parameters(model)  # the parameters and one working copy
    have = available_bytes(device)
    if have is not None and need > have:
        layers = ",".join(str(n) for n in model.layers)
        raise ConfigError(
            f"layers {layers} (D = {model.n_visible}) have {n_parameters(model):,} parameters, about {_gb(need)}, "
            f"more than the {_gb(have)} free on {device}; use smaller layers"
        )
    return need


def check_training_fits(model: ModelConfig, train: TrainConfig, device: torch.device, where: str = "") -> int:
    """Raise ConfigError (one line) when training ``model`` cannot fit in ``device``'s free memory.

    Returns the estimate in bytes. ``where`` prefixes the message (e.g. the checkpoint's name).
    """
    need = training_bytes(model, train)
    have = available_bytes(device)
    if have is not None and need > have:
        layers = ",".join(str(n) for n in model.layers)
        culprit = _culprit(model, train)
        if culprit != "use smaller layers":  # the samples per step, not the model, are too many
            raise ConfigError(f"{where}{culprit}: training would need about {_gb(need)}, "
                              f"more than the {_gb(have)} free on {device}")
        raise ConfigError(
            f"{where}layers {layers} (D = {model.n_visible}) need about {_gb(need)} to train "
            f"({n_parameters(model):,} parameters with gradients and Adam moments, plus activations), "
            f"more than the {_gb(have)} free on {device}; {culprit}"
        )
    return need


#: Multiply-adds one command may plan before it is refused as absurd: about 10^18 (days of work
#: on a fast GPU, months on a CPU). The thesis' largest estimates (K = 10^5 on 10,000 test points
#: of the paper12 net) are below 10^16.
MAX_WORK = 10**18


def sampling_bytes(model: ModelConfig, rows: int, itemsize: int = 4) -> int:
    """A generous estimate of the memory of ``rows`` samples through every layer at once."""
    return itemsize * (2 * n_parameters(model) + ACTIVATION_COPIES * int(rows) * sum(model.sizes))


def check_samples_fit(model: ModelConfig, rows: int, device: torch.device, what: str) -> int:
    """Raise ConfigError (one line, blaming ``what``, e.g. "--n 1,000,000 × -K 100") when ``rows``
    samples held at once cannot fit in ``device``'s free memory — before anything is allocated."""
    need = sampling_bytes(model, rows)
    have = available_bytes(device)
    if have is not None and need > have:
        raise ConfigError(f"{what} is too large: {int(rows):,} samples at once would need about {_gb(need)}, "
                          f"more than the {_gb(have)} free on {device}")
    return need


def check_work(model: ModelConfig, samples: int, what: str) -> int:
    """Raise ConfigError (one line, blaming ``what``) when ``samples`` passes through ``model``
    (about 2 × its parameters multiply-adds each) exceed :data:`MAX_WORK`; returns the work."""
    work = 2 * int(samples) * n_parameters(model)
    if work > MAX_WORK:
        raise ConfigError(f"{what} is too large: {int(samples):,} samples, about {float(work):.1e} multiply-adds "
                          f"(the limit is {float(MAX_WORK):.0e}, days of work on a fast GPU); lower it")
    return work


def check_sampling(model, n: int, K: int = 1, inner_K: int = 1, steps: int = 1, n_option: str = "--n") -> None:
    """Refuse (one line, naming the options) pictures of ``n`` chains with ``K`` proposals and
    ``inner_K`` inner samples over ``steps`` sweeps that cannot fit in memory or would take absurdly
    long (``bihm sample|inpaint|layers``); ``model`` is a BiHM. ``n_option`` names what set n
    (``--index`` for a list of images)."""
    K, inner_K, steps = max(int(K), 1), max(int(inner_K), 1), max(int(steps), 1)
    chains = f"{n_option} {int(n):,}" if n_option == "--n" else f"{n_option} ({int(n):,} images)"
    held = f"{chains} × -K {K:,}" if K > 1 else chains
    if inner_K > int(n) * K:  # the engine chunks the rows of the p̃* estimate, not one row's inner samples
        held = f"--inner-k {inner_K:,}"
    check_samples_fit(model.cfg, max(int(n) * K, inner_K), model.device, held)
    parts = [chains] + [f"{o} {v:,}" for o, v in (("-K", K), ("--inner-k", inner_K), ("--steps", steps)) if v > 1]
    check_work(model.cfg, int(n) * K * inner_K * steps, " × ".join(parts))
