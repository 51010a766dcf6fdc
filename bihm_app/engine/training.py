"""Algorithm 1 (BiHM) and the reweighted wake-sleep baseline, with closed-form per-layer gradients.

Both methods draw K samples h_k ~ q(h | x), hold them fixed, and ascend

    Σ_k ω̃_k ∇θ [log p(x, h_k) + log q(h_k | x)]                                   (3.7)

with self-normalised weights ω̃ = softmax_k(log w_k):

* ``bihm``: log w_k = ½ [log p(x, h_k) − log q(h_k | x)]   — the gradient of log p̃*(x) (3.5)
* ``rws``:  log w_k =    log p(x, h_k) − log q(h_k | x)    — wake-p and wake-q updates of RWS

Every layer sees its input and output as observed, so each gradient is one residual times one
input (no backpropagation across layers): for p(h_{l−1} | h_l) = B(σ(W_l h_l + b_{l−1}))

    ∂/∂W_l = Σ_k ω̃_k (h_{l−1} − σ(W_l h_l + b_{l−1})) h_lᵀ

and likewise for q. The first bottom-up layer's logits U_1 x are computed once per data point and
its gradient sums the K weighted residuals first. The optional baseline replaces ω̃_k by
ω̃_k − 1/K in the q-updates (E_q[∇ log q] = 0, so the mean is unchanged and the variance drops).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from bihm_app.engine.model import BiHM

METHODS = ("bihm", "rws")
L1_SCALINGS = ("batch", "point")


@dataclass
class TrainConfig:
    """Training hyper-parameters; defaults follow the thesis' protocol (section 3.6)."""

    method: str = "bihm"  # "bihm" (Algorithm 1) or "rws" (the reweighted wake-sleep baseline)
    K: int = 10  # importance samples per data point
    batch_size: int = 100
    lr: float = 1e-3  # Adam
    # L1 penalty λ Σ|W| on all weights. With l1_per="batch" (the default, the authors' scaling:
    # jbornschein/bihm adds the gradient of l1reg·Σ|W| once to the minibatch's *summed* objective)
    # it is λ/B per data point; l1_per="point" adds λ per data point (bihm-app 0.1's meaning, 100×
    # stronger at B = 100; checkpoints written before l1_per existed keep it on resume).
    l1: float = 1e-3
    l1_per: str = "batch"  # "batch" or "point"
    baseline: bool = True  # (ω̃ − 1/K) baseline for the q-updates
    epochs: int = 1000  # upper bound; early stopping usually ends first
    patience: int = 10  # epochs without validation improvement before stopping (0: never stop early)
    valid_K: int = 10  # samples for the per-epoch validation estimate (the thesis uses 10)
    valid_max: int = 0  # validate on at most this many points (0: the whole split)
    z_samples: int = 100_000  # samples for the per-epoch 2 log Z estimate (0: skip)
    z_every: int = 1  # estimate 2 log Z every this many epochs
    seed: int = 0
    max_rollbacks: int = 5  # divergence guard: give up after this many NaN/inf rollbacks

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r} (use bihm or rws)")
        if self.K < 1:
            raise ValueError(f"K must be at least 1, got {self.K}")
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {self.batch_size}")
        if not (0 < self.lr <= 1):
            raise ValueError(f"learning rate must be in (0, 1], got {self.lr}")
        if not (math.isfinite(self.l1) and self.l1 >= 0):
            raise ValueError(f"L1 penalty must be a finite non-negative number, got {self.l1}")
        if self.l1_per not in L1_SCALINGS:
            raise ValueError(f"l1_per must be batch or point, got {self.l1_per!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.patience < 0:
            raise ValueError(f"patience must be non-negative, got {self.patience}")
        if self.valid_K < 1:
            raise ValueError(f"validation K must be at least 1, got {self.valid_K}")
        if self.z_samples < 0 or self.z_samples == 1:
            raise ValueError(f"z-samples must be 0 (off) or at least 2, got {self.z_samples}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        if "l1" in kept and "l1_per" not in kept:
            kept["l1_per"] = "point"  # written before l1_per existed: λ was applied per data point
        return cls(**kept)


@dataclass
class StepResult:
    """Outcome of one update: the batch objective per data point and whether all was finite."""

    objective: Tensor  # (B,) log p̃*(x) estimates (bihm) or log p(x) estimates (rws), before the step
    finite: bool


def _bernoulli_(out: Tensor, probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fill ``out`` with draws of B(probs) (broadcast), reusing its buffer for the uniforms."""
    out.uniform_(generator=generator)
    return torch.lt(out, probs, out=out)


def _bern_logp(v: Tensor, a: Tensor) -> Tensor:
    """Σ_i [v_i a_i − softplus(a_i)] over the last axis (log B(v | σ(a)))."""
    return (v * a - F.softplus(a)).sum(-1)


@torch.no_grad()
def closed_form_gradients(
    model: BiHM, x: Tensor, K: int, generator: torch.Generator | None, method: str = "bihm", baseline: bool = True
) -> tuple[Tensor, dict[str, Tensor]]:
    """One pass of Algorithm 1 (or RWS): sample, weight, and the ascent direction of (3.7).

    x: (B, D).  Returns the per-point objective (B,) — 2[lse_k log w_k − log K] (3.5) for bihm,
    lse_k log w_k − log K (3.6) for rws — and a dict ``name -> gradient`` (same names and shapes
    as ``model.named_parameters()``) of Σ_b Σ_k ω̃_bk ∇[log p(x_b, h_bk) + log q(h_bk | x_b)],
    summed (not averaged) over the batch. Samples are held fixed (no gradient through sampling).
    """
    B, D = x.shape
    L = model.n_layers
    dt = x.dtype

    # --- h_k ~ q(h | x), layer by layer; layer 1 logits once per data point -------------------
    u1 = model.q_logits(1, x)  # (B, n1)
    s1 = torch.sigmoid(u1)
    n1 = u1.shape[1]
    h = _bernoulli_(torch.empty((B, K, n1), device=x.device, dtype=dt), s1.unsqueeze(1), generator)
    log_q = torch.bmm(h, u1.unsqueeze(2)).squeeze(2) - F.softplus(u1).sum(1, keepdim=True)  # (B, K)
    hs = [x, h.reshape(B * K, n1)]  # latent layers flattened: (B·K, n_l)
    q_sig = [s1]
    for l in range(2, L + 1):
        u = model.q_logits(l, hs[l - 1])  # (B·K, n_l)
        s = torch.sigmoid(u)
        hl = _bernoulli_(torch.empty_like(u), s, generator)
        log_q = log_q + _bern_logp(hl, u).view(B, K)
        hs.append(hl)
        q_sig.append(s)

    # --- log p(x, h) top-down; keep σ(logits) for the residuals ------------------------------
    c = model.p_prior
    log_p = (hs[L] @ c - F.softplus(c).sum()).view(B, K)  # (B, K)
    p_sig: list[Tensor] = [None] * (L + 1)  # p_sig[l]: σ of the logits of h_{l-1} given h_l
    for l in range(L, 1, -1):
        a = model.p_logits(l, hs[l])  # (B·K, n_{l-1})
        log_p = log_p + _bern_logp(hs[l - 1], a).view(B, K)
        p_sig[l] = torch.sigmoid(a)
    a1 = model.p_logits(1, hs[1]).view(B, K, D)  # (B, K, D): the expensive layer
    log_p = log_p + torch.bmm(a1, x.unsqueeze(2)).squeeze(2) - F.softplus(a1).sum(2)

    # --- weights (3.7) and the objective -------------------------------------------------------
    if method == "bihm":
        log_w = 0.5 * (log_p - log_q)
        objective = 2.0 * (torch.logsumexp(log_w, 1) - math.log(K))  # (3.5)
    elif method == "rws":
        log_w = log_p - log_q
        objective = torch.logsumexp(log_w, 1) - math.log(K)  # (3.6)
    else:
        raise ValueError(f"unknown method {method!r}")
    omega = torch.softmax(log_w, 1)  # (B, K)
    w_flat = omega.reshape(B * K, 1)
    v = omega - 1.0 / K if baseline else omega  # weights of the q-updates
    v_flat = v.reshape(B * K, 1)

    g: dict[str, Tensor] = {}
    # p(h_L): Σ_bk ω (h_L − σ(c)) = Σ_bk ω h_L − B σ(c) since Σ_k ω = 1
    g["p_prior"] = (w_flat * hs[L]).sum(0) - B * torch.sigmoid(c)
    # p(x | h_1): residual ω (x − σ(a)), (B, K, D), computed in place in the logits' buffer
    r1 = a1.sigmoid_().sub_(x.unsqueeze(1)).mul_(-omega.unsqueeze(2)).view(B * K, D)
    g["p_weights.0"] = r1.t() @ hs[1]
    g["p_biases.0"] = r1.sum(0)
    for l in range(2, L + 1):
        r = p_sig[l].neg_().add_(hs[l - 1]).mul_(w_flat)  # (B·K, n_{l-1}): ω (h_{l-1} − σ(a))
        g[f"p_weights.{l - 1}"] = r.t() @ hs[l]
        g[f"p_biases.{l - 1}"] = r.sum(0)
    # q(h_1 | x): sum the K weighted residuals first, then one (n1, B) × (B, D) product
    rq1 = ((hs[1].view(B, K, n1) - s1.unsqueeze(1)) * v.unsqueeze(2)).sum(1)  # (B, n1)
    g["q_weights.0"] = rq1.t() @ x
    g["q_biases.0"] = rq1.sum(0)
    for l in range(2, L + 1):
        r = q_sig[l - 1].neg_().add_(hs[l]).mul_(v_flat)  # (B·K, n_l): v (h_l − σ(u))
        g[f"q_weights.{l - 1}"] = r.t() @ hs[l - 1]
        g[f"q_biases.{l - 1}"] = r.sum(0)
    return objective, g


def _adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch has one for the device, else the foreach one."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


class Trainer:
    """Adam on the closed-form gradients of Algorithm 1 / RWS, with L1 and divergence checks.

    Holds the model, the optimiser and the training generator; `state()`/`load_state()` give
    everything needed for a bit-exact resume (parameters, Adam moments, generator state,
    step counter). Under ``torchrun`` (torch.distributed initialised) gradients are averaged
    across ranks before the step, so each rank feeds its own shard of every batch.
    """

    def __init__(self, model: BiHM, cfg: TrainConfig, generator: torch.Generator) -> None:
        self.model = model
        self.cfg = cfg
        self.generator = generator
        self.params = dict(model.named_parameters())
        self.optimizer = _adam(list(self.params.values()), cfg.lr)
        self.step_count = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, x: Tensor) -> StepResult:
        """One update on the minibatch x (B, D): maximise mean_b objective − λ' Σ|W| (3.7),

        λ' = λ/B ("batch" scaling, the authors') or λ ("point")."""
        cfg = self.cfg
        objective, g = closed_form_gradients(self.model, x, cfg.K, self.generator, cfg.method, cfg.baseline)
        B = x.shape[0]
        world = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            flat = torch.cat([g[name].reshape(-1) for name in self.params])
            torch.distributed.all_reduce(flat)
            off = 0
            for name, p in self.params.items():
                n = p.numel()
                g[name] = flat[off : off + n].view_as(p)
                off += n
        scale = -1.0 / (B * world)  # Adam minimises: gradient of −mean objective
        # per data point: λ/B_global ("batch", the authors' Σ_b objective − λΣ|W|) or λ ("point")
        l1 = cfg.l1 / (B * world) if cfg.l1_per == "batch" else cfg.l1
        for name, p in self.params.items():
            grad = g[name].mul_(scale)
            if l1 > 0 and ("weights" in name):
                grad.add_(torch.sign(p.detach()), alpha=l1)
            p.grad = grad
        # One scalar check: a NaN or inf anywhere makes the sum non-finite (huge finite values
        # that overflow the sum count as divergence too). Adam's step is bounded by lr, so
        # finite gradients keep the parameters finite.
        check = objective.sum() + torch.stack([p.grad.sum() for p in self.params.values()]).sum()
        finite = bool(torch.isfinite(check))
        if finite:
            self.optimizer.step()
        for p in self.params.values():
            p.grad = None
        self.step_count += 1
        return StepResult(objective, finite)

    # -- exact resume ---------------------------------------------------------------------------
    def state(self) -> dict[str, Tensor]:
        """Flat name -> tensor map: ``params/…``, ``optim/<param>.<moment>``, ``rng/train``."""
        out: dict[str, Tensor] = {}
        for name, p in self.params.items():
            out[f"params/{name}"] = p.detach().cpu().clone()
        opt = self.optimizer.state_dict()
        names = list(self.params)
        for idx, st in opt["state"].items():
            for key, val in st.items():
                t = val if torch.is_tensor(val) else torch.tensor(val)
                out[f"optim/{names[idx]}.{key}"] = t.detach().cpu().clone()
        out["rng/train"] = self.generator.get_state().cpu().clone()
        return out

    def load_state(self, arrays: dict[str, Tensor], lr: float | None = None) -> None:
        """Restore what :meth:`state` produced (missing optimiser state means a fresh Adam)."""
        with torch.no_grad():
            for name, p in self.params.items():
                key = f"params/{name}"
                if key not in arrays:
                    raise ValueError(f"state has no parameter {name!r}")
                src = torch.as_tensor(arrays[key])
                if tuple(src.shape) != tuple(p.shape):
                    raise ValueError(f"parameter {name!r} has shape {tuple(src.shape)}, the model needs {tuple(p.shape)}")
                p.copy_(src.to(device=p.device, dtype=p.dtype))
        names = list(self.params)
        state: dict[int, dict] = {}
        for idx, name in enumerate(names):
            st = {}
            for key in ("step", "exp_avg", "exp_avg_sq"):
                k = f"optim/{name}.{key}"
                if k in arrays:
                    t = torch.as_tensor(arrays[k])
                    st[key] = t.clone() if key == "step" else t.to(device=self.params[name].device, dtype=self.params[name].dtype)
            if st:
                state[idx] = st
        if state:
            sd = self.optimizer.state_dict()
            sd["state"] = state
            self.optimizer.load_state_dict(sd)
        if lr is not None:
            self.set_lr(lr)
        if "rng/train" in arrays:
            self.generator.set_state(torch.as_tensor(arrays["rng/train"]).to(torch.uint8).cpu())
