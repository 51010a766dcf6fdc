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
from torch import Tensor

from bihm_app.engine.graphs import WARMUP_STEPS, StepGraph, graphs_available
from bihm_app.engine.model import BiHM
from bihm_app.engine.optim import Adam
from bihm_app.engine.passes import PRECISIONS, Products, Workspace, p_pass, sample_q_pass

METHODS = ("bihm", "rws")
L1_SCALINGS = ("batch", "point")


@dataclass(frozen=True)
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
    precision: str = "fp32"  # matrix products in fp32 or bf16 (fp32 master weights and log-probability sums)
    cuda_graph: bool = True  # on a CUDA device, replay the update from a CUDA graph (engine/graphs.py); ignored elsewhere

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_field_types(self)
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
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.valid_max < 0:
            raise ValueError(f"valid-max must be 0 (all) or a positive number of points, got {self.valid_max}")
        if self.z_every < 1:
            raise ValueError(f"z-every must be at least 1, got {self.z_every}")
        if self.seed < 0 or self.max_rollbacks < 0:
            raise ValueError(f"seed and max_rollbacks must be non-negative, got {self.seed} and {self.max_rollbacks}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in d.items() if k in names}
        if "l1" in kept and "l1_per" not in kept:
            kept["l1_per"] = "point"  # written before l1_per existed: λ was applied per data point
        return cls(**kept)


_FIELD_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_field_types(cfg) -> None:
    """Every field of a config dataclass has its declared type (a checkpoint's meta is untrusted
    JSON: ``K = "ten"`` must be one clear error, not a TypeError deep inside training)."""
    for f in fields(cfg):
        want = _FIELD_TYPES.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        v = getattr(cfg, f.name)
        if want is None:
            continue
        if not isinstance(v, want) or (isinstance(v, bool) and bool not in want):
            raise ValueError(f"{f.name} must be {f.type}, got {v!r}")


@dataclass
class StepResult:
    """Outcome of one update: the batch objective per data point and whether all was finite."""

    objective: Tensor  # (B,) log p̃*(x) estimates (bihm) or log p(x) estimates (rws), before the step
    finite: bool


@torch.no_grad()
def closed_form_gradients(
    model: BiHM, x: Tensor, K: int, generator: torch.Generator | None, method: str = "bihm", baseline: bool = True,
    *, precision: str = "fp32",
) -> tuple[Tensor, dict[str, Tensor]]:
    """One pass of Algorithm 1 (or RWS): sample, weight, and the ascent direction of (3.7).

    x: (B, D).  Returns the per-point objective (B,) — 2[lse_k log w_k − log K] (3.5) for bihm,
    lse_k log w_k − log K (3.6) for rws — and a dict ``name -> gradient`` (same names and shapes
    as ``model.named_parameters()``) of Σ_b Σ_k ω̃_bk ∇[log p(x_b, h_bk) + log q(h_bk | x_b)],
    summed (not averaged) over the batch. Samples are held fixed (no gradient through sampling).
    ``precision="bf16"`` runs the matrix products in bf16 (see :mod:`bihm_app.engine.passes`).
    """
    objective, _, g = _closed_form(model, x, K, generator, method, baseline, precision)
    return objective, g


def _gradient_buffer(model: BiHM, like: Tensor, ws: Workspace | None) -> tuple[Tensor, dict[str, Tensor]]:
    """One flat buffer for the gradients of every parameter of the BiHM, in ``named_parameters`` order,
    and a view of it per name (made once per model and workspace)."""
    memo = ws.memo.get("grad") if ws is not None else None
    if memo is not None and memo[0] is model and memo[1].device == like.device and memo[1].dtype == like.dtype:
        return memo[1], memo[2]
    names = [(n, p) for n, p in model.named_parameters() if n.split(".")[0] in _BIHM_PARAMS]
    total = sum(p.numel() for _, p in names)
    G = ws.get("grad", (total,), like.dtype, like.device) if ws is not None else torch.empty(total, dtype=like.dtype, device=like.device)
    views, off = {}, 0
    for n, p in names:
        views[n] = G[off : off + p.numel()].view(p.shape)
        off += p.numel()
    if ws is not None:
        ws.memo["grad"] = (model, G, views)
    return G, views


_BIHM_PARAMS = ("p_prior", "p_weights", "p_biases", "q_weights", "q_biases")


@torch.no_grad()
def _closed_form(
    model: BiHM, x: Tensor, K: int, generator: torch.Generator | None, method: str, baseline: bool, precision: str = "fp32",
    ws: Workspace | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """:func:`closed_form_gradients` returning also the flat gradient buffer the dict's tensors view
    (a buffer of ``ws`` when given: valid until the next call with the same workspace)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    B, D = x.shape
    L = model.n_layers
    N = B * K
    prod = Products(model, precision, ws=ws)
    # --- h_k ~ q(h | x) and log q; log p(x, h) with the logits kept for the residuals ----------
    q = sample_q_pass(model, x, K, generator, prod, ws, keep_logits=False)  # the q-residuals use SQ
    pp = p_pass(model, x, q, prod, ws)
    H, n1 = q.H, q.sizes[1]

    # --- weights (3.7) and the objective -------------------------------------------------------
    log_w = pp.log_p - q.log_q
    if method == "bihm":
        log_w.mul_(0.5)
        objective = 2.0 * (torch.logsumexp(log_w, 1) - math.log(K))  # (3.5)
    else:
        objective = torch.logsumexp(log_w, 1) - math.log(K)  # (3.6)
    omega = torch.softmax(log_w, 1)  # (B, K)
    w_flat = omega.reshape(N, 1)
    v = omega - 1.0 / K if baseline else omega  # weights of the q-updates
    v_flat = v.reshape(N, 1)

    G, g = _gradient_buffer(model, x, ws)
    c = model.p_prior
    # p(h_L): Σ_bk ω (h_L − σ(c)) = Σ_bk ω h_L − B σ(c) since Σ_k ω = 1
    torch.mv(q.h(L).t(), w_flat.view(N), out=g["p_prior"]).sub_(torch.sigmoid(c), alpha=B)
    # p(x | h_1): residual ω (x − σ(a)), (B, K, D), in place in the logits' buffer
    r1 = pp.a1.sigmoid_().view(B, K, D).sub_(x.unsqueeze(1)).mul_(-omega.unsqueeze(2)).view(N, D)
    prod.grad(r1, q.h(1), out=g["p_weights.0"])
    torch.sum(r1, 0, out=g["p_biases.0"])
    # q(h_1 | x): sum the K weighted residuals first, then one (n1, B) × (B, D) product
    h1 = q.h(1).view(B, K, n1)
    rq1 = torch.bmm(v.unsqueeze(1), h1).squeeze(1).sub_(q.s1 * v.sum(1, keepdim=True))  # (B, n1)
    torch.mm(rq1.t(), x, out=g["q_weights.0"])
    torch.sum(rq1, 0, out=g["q_biases.0"])
    if L > 1:
        # p(h_{l-1} | h_l), l ≥ 2: ω (h_{l-1} − σ(a)) in the logits' buffer (the element-wise part
        # over all layers at once, the row weights and bias sums block by block)
        RP = pp.AP
        torch.sub(H.span(1, L - 1), RP.span(1, L - 1).sigmoid_(), out=RP.span(1, L - 1))
        # q(h_l | h_{l-1}), l ≥ 2: v (h_l − σ(u)) in the probabilities' buffer
        RQ = q.SQ
        torch.sub(H.span(2, L), RQ.span(2, L), out=RQ.span(2, L))
        for l in range(2, L + 1):
            rp, rq = RP[l - 1].mul_(w_flat), RQ[l].mul_(v_flat)
            prod.grad(rp, H[l], out=g[f"p_weights.{l - 1}"])
            torch.sum(rp, 0, out=g[f"p_biases.{l - 1}"])
            prod.grad(rq, H[l - 1], out=g[f"q_weights.{l - 1}"])
            torch.sum(rq, 0, out=g[f"q_biases.{l - 1}"])
    return objective, G, g


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


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
        self.optimizer = Adam(list(self.params.values()), cfg.lr)
        self.step_count = 0
        self._ws = Workspace()  # the step's buffers, reused from step to step
        self._graphs: dict[tuple, StepGraph] = {}  # per input shape (engine/graphs.py)
        self._warm: dict[tuple, int] = {}  # eager updates per input shape before its capture
        self._graph_error: str | None = None  # why capture failed (then every update is eager)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        self._drop_graphs()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, x: Tensor) -> StepResult:
        """One update on the minibatch x (B, D): maximise mean_b objective − λ' Σ|W| (3.7),

        λ' = λ/B ("batch" scaling, the authors') or λ ("point"). On CUDA (``cfg.cuda_graph``) the
        update is replayed from a CUDA graph after :data:`WARMUP_STEPS` eager ones per shape."""
        graph = self._graph_for(x)
        if graph is not None:
            objective, finite = graph.replay(x)
        else:
            objective, g, bad = self._gradients(x, self._ws)
            finite = not bool(bad)
            if finite:
                self._apply(g)
        self.step_count += 1
        return StepResult(objective, finite)

    def _gradients(self, x: Tensor, ws: Workspace) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """(objective (B,), the gradients of the minimised loss by parameter name, 0-d bool: non-finite?)."""
        cfg = self.cfg
        objective, G, g = _closed_form(self.model, x, cfg.K, self.generator, cfg.method, cfg.baseline, cfg.precision, ws)
        B = x.shape[0]
        world = 1
        if _distributed():
            world = torch.distributed.get_world_size()
            torch.distributed.all_reduce(G)  # the flat buffer: one message, parameters in a fixed order
        G.mul_(-1.0 / (B * world))  # Adam minimises: gradient of −mean objective
        # per data point: λ/B_global ("batch", the authors' Σ_b objective − λΣ|W|) or λ ("point")
        l1 = cfg.l1 / (B * world) if cfg.l1_per == "batch" else cfg.l1
        if l1 > 0:  # + λ' sign(W), the signs in the workspace (fresh ~1 MB tensors each step cost page faults)
            names = [n for n in self.params if "weights" in n]
            signs = []
            for n in names:
                w = self.params[n].detach()
                signs.append(torch.sign(w, out=ws.get(f"sign.{n}", tuple(w.shape), w.dtype, w.device)))
            torch._foreach_add_([g[n] for n in names], signs, alpha=l1)
        # One scalar check: a NaN or inf anywhere makes the sum non-finite (huge finite values
        # that overflow the sum count as divergence too). Adam's step is bounded by lr, so
        # finite gradients keep the parameters finite.
        return objective, g, ~torch.isfinite(objective.sum() + G.sum())

    def _apply(self, g: dict[str, Tensor], found_inf: Tensor | None = None) -> None:
        for name, p in self.params.items():
            p.grad = g[name]
        self.optimizer.step(found_inf)
        for p in self.params.values():
            p.grad = None

    def _graph_body(self, x: Tensor, ws: Workspace) -> tuple[Tensor, Tensor]:
        objective, g, bad = self._gradients(x, ws)
        bad = bad.float()
        self._apply(g, found_inf=bad)  # Adam's fused kernel skips the update when bad is set
        return objective, bad

    def _graph_for(self, x: Tensor) -> StepGraph | None:
        """The recorded update for x's shape, captured after its warm-up; None: update eagerly."""
        if not (self.cfg.cuda_graph and self._graph_error is None and graphs_available(x.device)) or _distributed():
            return None
        key = (tuple(x.shape), x.dtype)
        if key in self._graphs:
            return self._graphs[key]
        self._warm[key] = self._warm.get(key, 0) + 1
        if self._warm[key] <= WARMUP_STEPS or len(self._graphs) >= 2:  # at most two shapes (full and last batch)
            return None
        try:
            self._graphs[key] = StepGraph(self._graph_body, x, self.generator)
        except RuntimeError as exc:  # capture refused (old torch, an op that syncs): stay eager
            self._graph_error = f"{type(exc).__name__}: {exc}"
            return None
        return self._graphs[key]

    def _drop_graphs(self) -> None:
        """Recordings hold the parameters', moments' and learning rate's values at capture."""
        self._graphs.clear()
        self._warm.clear()

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
        self._drop_graphs()
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
