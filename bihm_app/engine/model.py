"""The two sigmoid belief nets of a BiHM: top-down p and bottom-up q (bihm-math.md, "The two directed models").

Layer index bottom-up: ``h_0 = x`` (D visible units), ``h_1 … h_L`` with sizes ``n_1 … n_L``.

Parameters (names are the checkpoint's names, see :func:`parameter_shapes`):

* ``p_prior``       (n_L,)            logits c of the factorized top prior p(h_L)
* ``p_weights.i``   (n_i, n_{i+1})    W_{i+1}: logits of h_i given h_{i+1}   (i = 0 … L-1)
* ``p_biases.i``    (n_i,)            b_i
* ``q_weights.i``   (n_{i+1}, n_i)    U_{i+1}: logits of h_{i+1} given h_i
* ``q_biases.i``    (n_{i+1},)        d_{i+1}

Samples of one data point are contiguous: tensors of latent samples have shape ``(B, K, n_l)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bihm_app.engine.uniform import uniform_

#: The thesis' 12-layer binarized-MNIST architecture (section 3.6), bottom-up, excluding x.
PAPER12 = (300, 200, 100, 75, 50, 35, 30, 25, 20, 15, 10, 10)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a BiHM: visible size D and latent sizes n_1 … n_L (bottom-up)."""

    n_visible: int
    layers: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(n) for n in self.layers))
        if int(self.n_visible) < 1:
            raise ValueError(f"the visible layer needs at least one unit, got {self.n_visible}")
        if len(self.layers) < 1:
            raise ValueError("a BiHM needs at least one latent layer")
        if any(n < 1 for n in self.layers):
            raise ValueError(f"every latent layer needs at least one unit, got {','.join(map(str, self.layers))}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """(D, n_1, …, n_L)."""
        return (int(self.n_visible), *self.layers)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(n_visible=int(d["n_visible"]), layers=tuple(int(n) for n in d["layers"]))


def parse_layers(spec: str) -> tuple[int, ...]:
    """Parse a layer spec such as ``"300,200,100"`` or the preset ``"paper12"``; raises ValueError."""
    spec = spec.strip()
    if spec.lower() == "paper12":
        return PAPER12
    try:
        sizes = tuple(int(s) for s in spec.replace(" ", "").split(",") if s != "")
    except ValueError:
        raise ValueError(f"layer spec {spec!r} is not a comma-separated list of integers (e.g. 200,200)") from None
    if not sizes:
        raise ValueError("layer spec is empty (give e.g. 200,200 or paper12)")
    if any(n < 1 for n in sizes):
        raise ValueError(f"layer spec {spec!r}: every layer needs at least one unit")
    return sizes


def parameter_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every parameter of a BiHM with this config (checkpoint schema)."""
    n = cfg.sizes
    L = len(cfg.layers)
    shapes: dict[str, tuple[int, ...]] = {"p_prior": (n[L],)}
    for i in range(L):
        shapes[f"p_weights.{i}"] = (n[i], n[i + 1])
        shapes[f"p_biases.{i}"] = (n[i],)
    for i in range(L):
        shapes[f"q_weights.{i}"] = (n[i + 1], n[i])
        shapes[f"q_biases.{i}"] = (n[i + 1],)
    return shapes


def bernoulli_log_prob(v: Tensor, logits: Tensor) -> Tensor:
    """log B(v | σ(a)) = Σ_i [v_i a_i − softplus(a_i)], summed over the last axis.

    ``v`` and ``logits`` broadcast, e.g. (B, K, n) against (B, 1, n); result drops the last axis.
    """
    return (v * logits - F.softplus(logits)).sum(-1)


def bernoulli_sample(logits: Tensor, generator: torch.Generator | None) -> Tensor:
    """Draw v ~ B(σ(a)) with an explicit generator; same shape and dtype as ``logits``."""
    u = uniform_(torch.empty(logits.shape, device=logits.device, dtype=logits.dtype), generator)
    return (u < torch.sigmoid(logits)).to(logits.dtype)


def _glorot_uniform_(w: Tensor, generator: torch.Generator | None) -> None:
    fan_out, fan_in = w.shape
    a = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        u = torch.rand(w.shape, generator=generator, dtype=w.dtype, device=w.device)
        w.copy_(u * 2 * a - a)


class BiHM(nn.Module):
    """Top-down SBN p and bottom-up SBN q sharing the layer sizes (D, n_1, …, n_L).

    Initialisation follows the thesis (3.6): Glorot & Bengio uniform weights, every bias −1
    (the top prior's logits included).
    """

    def __init__(self, cfg: ModelConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.sizes
        L = len(cfg.layers)
        self.p_prior = nn.Parameter(torch.full((n[L],), -1.0))
        self.p_weights = nn.ParameterList([nn.Parameter(torch.empty(n[i], n[i + 1])) for i in range(L)])
        self.p_biases = nn.ParameterList([nn.Parameter(torch.full((n[i],), -1.0)) for i in range(L)])
        self.q_weights = nn.ParameterList([nn.Parameter(torch.empty(n[i + 1], n[i])) for i in range(L)])
        self.q_biases = nn.ParameterList([nn.Parameter(torch.full((n[i + 1],), -1.0)) for i in range(L)])
        for w in [*self.p_weights, *self.q_weights]:
            _glorot_uniform_(w, generator)

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        """L, the number of latent layers."""
        return len(self.cfg.layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        return self.cfg.sizes

    @property
    def device(self) -> torch.device:
        return self.p_prior.device

    @property
    def dtype(self) -> torch.dtype:
        return self.p_prior.dtype

    def weights(self) -> list[Tensor]:
        """All weight matrices (the parameters the L1 penalty acts on)."""
        return [*self.p_weights, *self.q_weights]

    # -- conditionals (logits) ---------------------------------------------------------------
    def p_logits(self, l: int, h_l: Tensor) -> Tensor:
        """Logits of p(h_{l-1} | h_l) = σ(W_l h_l + b_{l-1}), l = 1 … L.  (…, n_l) -> (…, n_{l-1})."""
        return torch.addmm(self.p_biases[l - 1], h_l.reshape(-1, h_l.shape[-1]), self.p_weights[l - 1].t()).reshape(
            *h_l.shape[:-1], -1
        )

    def q_logits(self, l: int, h_prev: Tensor) -> Tensor:
        """Logits of q(h_l | h_{l-1}) = σ(U_l h_{l-1} + d_l), l = 1 … L.  (…, n_{l-1}) -> (…, n_l)."""
        return torch.addmm(
            self.q_biases[l - 1], h_prev.reshape(-1, h_prev.shape[-1]), self.q_weights[l - 1].t()
        ).reshape(*h_prev.shape[:-1], -1)

    # -- the bottom-up proposal q(h|x) --------------------------------------------------------
    def sample_q(
        self, x: Tensor, K: int, generator: torch.Generator | None, start_layer: int = 1
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """Draw K samples h ~ q(h | x) layer by layer.

        x: (B, D).  Returns ``(hs, logits, log_q)`` with ``hs = [x, h_1, …, h_L]`` where
        ``h_l`` is (B, K, n_l) for l ≥ 1 (``hs[0]`` is x itself, (B, D)); ``logits[l-1]`` are the
        logits of q(h_l | h_{l-1}) — (B, 1, n_1) for the first layer, which is computed once per
        data point, not once per sample — and ``log_q`` is log q(h | x), (B, K). The draws are those
        of the training step for the same generator state (both use
        :func:`bihm_app.engine.passes.sample_q_pass`); the ``h_l`` are views of one buffer.
        """
        from bihm_app.engine.passes import sample_q_pass

        q = sample_q_pass(self, x, K, generator)
        B, L = x.shape[0], self.n_layers
        hs = [x] + [q.h(l).view(B, K, -1) for l in range(1, L + 1)]
        logits = [q.u1.unsqueeze(1)] + [q.AQ[l].view(B, K, -1) for l in range(2, L + 1)]
        return hs, logits, q.log_q

    def log_q(self, hs: list[Tensor]) -> Tensor:
        """log q(h | x) for given samples ``hs = [x (B, D), h_1 (B, K, n_1), …]`` -> (B, K)."""
        x = hs[0]
        out = bernoulli_log_prob(hs[1], self.q_logits(1, x).unsqueeze(1))
        for l in range(2, self.n_layers + 1):
            out = out + bernoulli_log_prob(hs[l], self.q_logits(l, hs[l - 1]))
        return out

    # -- the top-down model p(x, h) -------------------------------------------------------------
    def log_p(self, hs: list[Tensor], return_logits: bool = False):
        """log p(x, h) = log p(h_L) + Σ_l log p(h_{l-1} | h_l) for ``hs = [x (B, D), h_1 (B, K, n_1), …]``.

        Returns (B, K); with ``return_logits`` also the list of logits of p(h_{l-1} | h_l),
        l = 1 … L, each (B, K, n_{l-1}), for reuse by the closed-form gradients.
        """
        L = self.n_layers
        out = bernoulli_log_prob(hs[L], self.p_prior)
        logits: list[Tensor] = []
        for l in range(1, L + 1):
            a = self.p_logits(l, hs[l])  # (B, K, n_{l-1})
            target = hs[0].unsqueeze(1) if l == 1 and hs[0].dim() == hs[1].dim() - 1 else hs[l - 1]
            out = out + bernoulli_log_prob(target, a)
            logits.append(a)
        return (out, logits) if return_logits else out

    def sample_p(self, n: int, generator: torch.Generator | None, top: Tensor | None = None) -> list[Tensor]:
        """Ancestral samples (x, h) ~ p: returns ``[x, h_1, …, h_L]``, each (n, n_l).

        With ``top`` given ((n, n_L)), the top layer is clamped to it instead of drawn from p(h_L).
        """
        L = self.n_layers
        if top is None:
            prior = self.p_prior.expand(n, -1)
            h = bernoulli_sample(prior, generator)
        else:
            h = top
        hs = [h]
        for l in range(L, 0, -1):
            h = bernoulli_sample(self.p_logits(l, h), generator)
            hs.append(h)
        return hs[::-1]

    def sample_p_below(self, h_l: Tensor, l: int, generator: torch.Generator | None) -> list[Tensor]:
        """Draw h_{l-1}, …, h_1, x ~ p(· | h_l) for a given state h_l ((…, n_l)); returns [x, …, h_l]."""
        hs = [h_l]
        h = h_l
        for j in range(l, 0, -1):
            h = bernoulli_sample(self.p_logits(j, h), generator)
            hs.append(h)
        return hs[::-1]

    def n_parameters(self) -> dict[str, int]:
        """Parameter counts of p, q and their sum."""
        p = self.p_prior.numel() + sum(t.numel() for t in [*self.p_weights, *self.p_biases])
        q = sum(t.numel() for t in [*self.q_weights, *self.q_biases])
        return {"p": p, "q": q, "total": p + q}


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """An explicit, seeded generator on ``device`` (every random draw goes through one)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto|cpu|cuda|cuda:N|mps`` -> a torch.device; raises ValueError if it is not available."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but torch sees no CUDA GPU (use --device cpu)")
        if ":" in spec:
            try:
                idx = int(spec.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"device {spec!r} is not of the form cuda:N") from None
            if not 0 <= idx < torch.cuda.device_count():
                raise ValueError(f"device {spec!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device(spec)
    if spec == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' asked for, but torch sees no Apple GPU (use --device cpu)")
        return torch.device("mps")
    raise ValueError(f"unknown device {spec!r} (use auto, cpu, cuda, cuda:N or mps)")
