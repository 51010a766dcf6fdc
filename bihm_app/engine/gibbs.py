"""Sampling from p*: Gibbs with importance resampling (Algorithm 2), inpainting (3.4), layer-wise
generation (figures 4.1–4.3), ancestral and importance-resampled samples (bihm-math.md,
"Sampling from p*: Algorithm 2").

p*(x, h) ∝ sqrt(p(x, h) q(h | x) p*(x)) couples only neighbouring layers, so a sweep updates all odd
latent layers (1, 3, …) and then all even layers (x = layer 0, 2, 4, …). Each layer is drawn from its
conditional by importance resampling among K proposals:

* latent layer l (3.9, 3.10): proposal ½ p(h_l | h_{l+1}) + ½ q(h_l | h_{l-1}); target
  sqrt(p(h_l | h_{l+1}) p(h_{l-1} | h_l) q(h_l | h_{l-1}) q(h_{l+1} | h_l)) with p(h_L | h_{L+1}) := p(h_L)
  and no q(h_{L+1} | h_L) factor at the top (the top's target *does* include p(h_{L-1} | h_L));
* visible layer: proposal p(x | h_1); weight ω = sqrt(p̃*(x) q(h_1 | x) / p(x | h_1)).

Why the x step is sound with an *estimated* p̃*: the weight is linear in sqrt(p̃*(x)), and
sqrt of the estimate (3.5) is exp(logsumexp_j log w_j − log K_in) = mean_j w_j, an **unbiased**
estimate of sqrt(p̃*(x)) = Σ_h sqrt(p(x, h) q(h | x)). Importance resampling with unbiased random
weights is consistent as K → ∞ for any inner K (the bias of (3.5) in log space does not enter), and
with ``keep_current=True`` (iterated SIR: the current state, with the estimate it was chosen with, is one
of the K candidates) every step is exactly p*-invariant for any K ≥ 2 and any inner K — the
pseudo-marginal argument on the space extended by the inner samples. With the plain Algorithm 2 step
(K fresh proposals, ``keep_current=False``) a step draws from the conditional only approximately, with
an error that vanishes as K grows (the thesis uses K = 100 … 10,000). It can be large: inpainting a
strongly coupled tiny model, plain resampling left a TV error of 0.18 at K = 50, 0.045 at K = 200 and
0.02 at K = 1000, while ``keep_current`` with K = 20 was at the Monte-Carlo floor (< 0.01).

Shapes: chain states are lists ``[x (B, D), h_1 (B, n_1), …, h_L (B, n_L)]``; the K proposals of
chain b are ``(B, K, n_l)``, contiguous per chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from bihm_app.engine.estimators import chunk_rows
from bihm_app.engine.model import BiHM, bernoulli_log_prob
from bihm_app.engine.passes import Products, Workspace, bern_logp_sum, log_weights_pass
from bihm_app.engine.uniform import uniform_

#: log p̃*(x) for a batch of visible vectors, (n, D) -> (n,): the exact oracle in tests.
LogPtildeFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class GibbsConfig:
    """How each layer of Algorithm 2 is resampled.

    ``K`` proposals per layer update; ``inner_K`` samples h ~ q(h | x) of the p̃*(x) estimate (3.5)
    in the x step; ``keep_current``: the current state is one of the K candidates (iterated SIR,
    exactly p*-invariant for any K ≥ 2) instead of K fresh proposals; ``log_ptilde_fn``: the exact
    log p̃*(x) (tests with the oracle) instead of the estimate. Raises ValueError when out of range.
    """

    K: int
    inner_K: int = 10
    keep_current: bool = False
    log_ptilde_fn: LogPtildeFn | None = None

    def __post_init__(self) -> None:
        if self.K < 1 or (self.keep_current and self.K < 2):
            raise ValueError(f"K must be at least {2 if self.keep_current else 1}, got {self.K}")
        if self.inner_K < 1:
            raise ValueError(f"inner K must be at least 1, got {self.inner_K}")


@dataclass
class GibbsState:
    """The state of B chains: ``hs = [x (B, D), h_1 (B, n_1), …, h_L (B, n_L)]``.

    ``log_sqrt_ptilde`` (B,) is the estimate of log sqrt p̃*(x) the current x was selected with; the
    ``keep_current`` x step reuses it (recomputing it would break the pseudo-marginal argument).
    """

    hs: list[Tensor]
    log_sqrt_ptilde: Tensor | None = None

    @property
    def x(self) -> Tensor:
        return self.hs[0]


@dataclass
class Clamp:
    """Visible units held fixed (inpainting, 3.4): ``x`` (B, D) the corrupted image x̃ and ``known``
    (B, D) or (D,) bool, True where x̃ is kept."""

    x: Tensor
    known: Tensor

    @cached_property
    def binary(self) -> bool:
        """x̃ is 0/1 everywhere (then clamped candidates are binary: the exact int8 path may take them)."""
        return bool(((self.x == 0) | (self.x == 1)).all())

    def apply(self, x: Tensor) -> Tensor:
        """Set the known units of x ((B, D) or (B, K, D)) back to x̃."""
        known, values = self.known, self.x
        if x.dim() == 3:
            values = values.unsqueeze(1)
            known = known.unsqueeze(1) if known.dim() == 2 else known
        return torch.where(known, values, x)


@dataclass
class GibbsResult:
    """Final draws ``x`` (B, D), the Bernoulli means ``means`` = σ(logits of p(x | h_1)) of the final
    visible step (B, D), the final chain ``state`` and, if asked, the ``trajectory`` of means after
    every recorded sweep (list of (B, D) tensors on the CPU, the start first)."""

    x: Tensor
    means: Tensor
    state: GibbsState
    trajectory: list[Tensor] = field(default_factory=list)

    def pictures(self, expected: bool) -> Tensor:
        """The Bernoulli means if ``expected`` (crisper pictures), else the binary draws; (B, D)."""
        return self.means if expected else self.x


# -- the resampling step ----------------------------------------------------------------------------
def _pick(log_w: Tensor, generator: torch.Generator | None) -> Tensor:
    """One index per row drawn ∝ exp(log_w) by the Gumbel-max trick.  log_w (B, K) -> (B,) long."""
    u = torch.rand(log_w.shape, generator=generator, device=log_w.device, dtype=log_w.dtype)
    tiny = torch.finfo(log_w.dtype).tiny
    e = (-torch.log(u.clamp(min=tiny))).clamp(min=tiny)  # Exp(1) variates, > 0
    gumbel = -torch.log(e)
    return torch.argmax(log_w + gumbel, dim=1)


def _gather(cand: Tensor, idx: Tensor) -> Tensor:
    """cand (B, K, n), idx (B,) -> (B, n)."""
    return cand[torch.arange(cand.shape[0], device=cand.device), idx]


# -- latent layers -----------------------------------------------------------------------------------
def _p_logits_of_layer(model: BiHM, hs: list[Tensor], l: int) -> Tensor:
    """Logits of p(h_l | h_{l+1}) ((B, n_l)); p(h_L | h_{L+1}) := p(h_L)."""
    if l == model.n_layers:
        return model.p_prior.expand(hs[l].shape[0], -1)
    return model.p_logits(l + 1, hs[l + 1])


def _blp_shared(cand: Tensor, a: Tensor) -> Tensor:
    """log B(cand | σ(a)) for candidates (B, K, n) under logits shared by a chain's candidates (B, 1, n):
    cand · a − Σ softplus(a), one dot product per candidate (the softplus once per chain). -> (B, K)"""
    return torch.bmm(cand, a.transpose(1, 2)).squeeze(2).sub_(F.softplus(a).sum(-1))


def _latent_terms(
    model: BiHM, hs: list[Tensor], l: int, cand: Tensor, a_p: Tensor, a_q: Tensor, ws: Workspace | None
) -> tuple[Tensor, Tensor, Tensor]:
    """(log p(cand | h_{l+1}), log q(cand | h_{l-1}), the factors of the layers below and above): each (B, K).

    ``a_p``/``a_q`` (B, 1, n_l) the logits of p(h_l | h_{l+1}) and q(h_l | h_{l-1}).
    """
    L = model.n_layers
    B, K, n = cand.shape
    lp_up = _blp_shared(cand, a_p)
    lq_up = _blp_shared(cand, a_q)
    rest = torch.zeros_like(lp_up)
    flat = cand.reshape(B * K, n)
    prod = Products(model, int8=True, ws=ws)  # candidates are binary: the exact int8 path may take them
    # p(h_{l-1} | h_l) (at the top too) and q(h_{l+1} | h_l): their logits are used up by the log-probability
    below = lambda: prod.logits("p", l, flat, binary=True).view(B, K, -1)  # noqa: E731
    rest += bern_logp_sum(below(), hs[l - 1].unsqueeze(1), ws, below)
    if l < L:
        above = lambda: prod.logits("q", l + 1, flat, binary=True).view(B, K, -1)  # noqa: E731
        rest += bern_logp_sum(above(), hs[l + 1].unsqueeze(1), ws, above)
    return lp_up, lq_up, rest


def latent_log_target(model: BiHM, hs: list[Tensor], l: int, cand: Tensor) -> Tensor:
    """log of the unnormalised conditional p*(h_l | h_{l-1}, h_{l+1}) (Algorithm 2, 3.9) at candidates.

    ½ [log p(h_l | h_{l+1}) + log p(h_{l-1} | h_l) + log q(h_l | h_{l-1}) + log q(h_{l+1} | h_l)]
    with p(h_L | h_{L+1}) := p(h_L) and no q factor above the top. ``hs`` the chain state (B, n_·),
    ``cand`` (B, K, n_l) -> (B, K).
    """
    a_p = _p_logits_of_layer(model, hs, l).unsqueeze(1)
    a_q = model.q_logits(l, hs[l - 1]).unsqueeze(1)
    lp_up, lq_up, rest = _latent_terms(model, hs, l, cand, a_p, a_q, None)
    return 0.5 * (lp_up + lq_up + rest)


def _draw_bernoulli(probs: Tensor, shape: tuple[int, ...], generator, ws: Workspace | None, name: str) -> Tensor:
    """Draws of B(probs) (broadcast to ``shape``) into a fresh buffer of uniforms, compared in place."""
    u = ws.get(name, shape, probs.dtype, probs.device) if ws is not None else torch.empty(shape, dtype=probs.dtype, device=probs.device)
    return uniform_(u, generator).lt_(probs)


def resample_latent_layer(
    model: BiHM,
    hs: list[Tensor],
    l: int,
    K: int,
    generator: torch.Generator | None,
    keep_current: bool = False,
    ws: Workspace | None = None,
) -> Tensor:
    """One importance-resampling draw of h_l for every chain (Algorithm 2, inner loop; 3.9, 3.10).

    K proposals, each from one half of ½ p(h_l | h_{l+1}) + ½ q(h_l | h_{l-1}) chosen at random;
    weight ω_k = target / mixture density (logaddexp in log space); one h_l picked ∝ ω. With
    ``keep_current`` candidate 0 is the current h_l and K−1 proposals are fresh (iterated SIR, an exact
    p*-invariant kernel). ``hs`` (B, n_·) -> new h_l (B, n_l).
    """
    B = hs[0].shape[0]
    a_p = _p_logits_of_layer(model, hs, l).unsqueeze(1)  # (B, 1, n_l)
    a_q = model.q_logits(l, hs[l - 1]).unsqueeze(1)  # (B, 1, n_l)
    n = a_p.shape[-1]
    n_new = K - 1 if keep_current else K
    use_p = (torch.rand((B, n_new, 1), generator=generator, device=a_p.device, dtype=a_p.dtype) < 0.5).to(a_p.dtype)
    s_q = torch.sigmoid(a_q)
    probs = torch.addcmul(s_q, use_p, torch.sigmoid(a_p) - s_q)  # σ(a_p) where use_p, else σ(a_q): (B, n_new, n)
    cand = _draw_bernoulli(probs, (B, n_new, n), generator, ws, "cand")
    if keep_current:
        cand = torch.cat([hs[l].unsqueeze(1), cand], 1)  # (B, K, n_l)
    lp_up, lq_up, rest = _latent_terms(model, hs, l, cand, a_p, a_q, ws)
    log_mix = torch.logaddexp(lp_up, lq_up) - math.log(2.0)
    log_w = 0.5 * (lp_up + lq_up + rest) - log_mix  # (B, K)
    return _gather(cand, _pick(log_w, generator))


# -- the visible layer -------------------------------------------------------------------------------
@torch.no_grad()
def estimate_log_sqrt_ptilde(
    model: BiHM, x: Tensor, inner_K: int, generator: torch.Generator | None, max_rows: int | None = None,
    u1: Tensor | None = None, ws: Workspace | None = None,
) -> Tensor:  # fmt: skip
    """½ log p̃*(x) by (3.5) with ``inner_K`` samples h ~ q(h | x): logsumexp_j log w_j − log inner_K.

    exp of it, mean_j w_j, is an unbiased estimate of sqrt p̃*(x). x (N, D) -> (N,); at most
    ``max_rows`` (point, sample) rows in flight (default :func:`~bihm_app.engine.estimators.chunk_rows`).
    ``u1`` (N, n_1): q's first-layer logits U_1 x + d_1 when the caller has them already (the x step does).
    """
    rows = max(1, (max_rows or chunk_rows(model.sizes, model.device)) // max(1, inner_K))
    ws = ws or Workspace()
    parts = []
    with ws.fixed_weights():
        for start in range(0, x.shape[0], rows):
            sl = slice(start, start + rows)
            lp, lq = log_weights_pass(model, x[sl], inner_K, generator, ws=ws, u1=None if u1 is None else u1[sl])
            parts.append(torch.logsumexp(lp.sub_(lq).mul_(0.5), 1) - math.log(inner_K))
    return torch.cat(parts)


def _log_sqrt_ptilde(
    model: BiHM, x: Tensor, inner_K: int, generator: torch.Generator | None, log_ptilde_fn: LogPtildeFn | None,
    u1: Tensor | None = None, ws: Workspace | None = None,
) -> Tensor:  # fmt: skip
    """½ log p̃*(x) for x (N, D): exact via ``log_ptilde_fn`` if given, else the estimate (3.5)."""
    if log_ptilde_fn is not None:
        return 0.5 * log_ptilde_fn(x).to(x.dtype)
    return estimate_log_sqrt_ptilde(model, x, inner_K, generator, u1=u1, ws=ws)


def resample_visible_layer(
    model: BiHM, state: GibbsState, generator: torch.Generator | None, config: GibbsConfig,
    clamp: Clamp | None = None, ws: Workspace | None = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """One importance-resampling draw of x for every chain (Algorithm 2, x loop).

    Proposals x^(k) ~ p(x | h_1) (known units set to x̃ *before* weighting when clamped — the known
    units' factor p(x_known | h_1) is then common to all k, so the weight below is the right one for
    p*(x_missing | x_known, h_1)); weight ω_k = sqrt(p̃*(x^(k)) q(h_1 | x^(k)) / p(x^(k) | h_1)) with p̃*
    exact (``config.log_ptilde_fn``) or estimated by (3.5) with ``config.inner_K`` samples. q's first-layer logits of
    each proposal serve both q(h_1 | x^(k)) and the inner estimate's draws.
    Returns (x (B, D), its log sqrt p̃* (B,), means σ(logits of p(x | h_1)) (B, D)).
    """
    K, inner_K, keep_current, log_ptilde_fn = config.K, config.inner_K, config.keep_current, config.log_ptilde_fn
    x, h1 = state.hs[0], state.hs[1]
    B, D = x.shape
    a = model.p_logits(1, h1).unsqueeze(1)  # (B, 1, D)
    n_new = K - 1 if keep_current else K
    cand = _draw_bernoulli(torch.sigmoid(a), (B, n_new, D), generator, ws, "xcand")  # (B, n_new, D)
    if clamp is not None:
        cand = clamp.apply(cand)
    if keep_current:
        cand = torch.cat([x.unsqueeze(1), cand], 1)  # (B, K, D)
    flat = cand.reshape(-1, D)
    binary = clamp is None or clamp.binary
    prod = Products(model, int8=True, ws=ws)
    u1 = prod.logits("q", 1, flat, binary=binary)  # (B·K, n_1): U_1 x^(k) + d_1, once for both uses
    new = slice(1, None) if keep_current else slice(None)
    u1_new = u1.view(B, K, -1)[:, new].reshape(-1, u1.shape[-1])
    log_sqrt_pt = _log_sqrt_ptilde(model, cand[:, new].reshape(-1, D), inner_K, generator, log_ptilde_fn, u1_new, ws)
    log_sqrt_pt = log_sqrt_pt.view(B, n_new)
    if keep_current:
        current = state.log_sqrt_ptilde
        if current is None:  # first step from an arbitrary start: a fresh estimate
            current = _log_sqrt_ptilde(model, x, inner_K, generator, log_ptilde_fn, u1.view(B, K, -1)[:, 0], ws)
        log_sqrt_pt = torch.cat([current.unsqueeze(1), log_sqrt_pt], 1)
    again = lambda: prod.logits("q", 1, flat, binary=binary).view(B, K, -1)  # noqa: E731
    log_q_h1 = bern_logp_sum(u1.view(B, K, -1), h1.unsqueeze(1), ws, again)  # (B, K); uses u1 up
    log_p_x = _blp_shared(cand, a)  # (B, K)
    log_w = log_sqrt_pt + 0.5 * (log_q_h1 - log_p_x)
    idx = _pick(log_w, generator)
    means = torch.sigmoid(a[:, 0])
    if clamp is not None:
        means = clamp.apply(means)
    return _gather(cand, idx), log_sqrt_pt[torch.arange(B, device=x.device), idx], means


# -- sweeps and chains -------------------------------------------------------------------------------
@torch.no_grad()
def gibbs_sweep(
    model: BiHM, state: GibbsState, generator: torch.Generator | None, config: GibbsConfig,
    clamp: Clamp | None = None, _workspace: Workspace | None = None,
) -> tuple[GibbsState, Tensor]:  # fmt: skip
    """One sweep of Algorithm 2: all odd latent layers, then x and all even latent layers.

    Returns the new state and the Bernoulli means of its visible step, (B, D).
    See :func:`resample_latent_layer` and :func:`resample_visible_layer` for the arguments;
    ``_workspace`` lends the sweep's scratch buffers (:func:`run_chains` passes one for all sweeps).
    """
    L, K, keep, ws = model.n_layers, config.K, config.keep_current, _workspace or Workspace()
    hs = list(state.hs)
    with ws.fixed_weights():
        for l in range(1, L + 1, 2):  # odd layers: conditionally independent given the even ones
            hs[l] = resample_latent_layer(model, hs, l, K, generator, keep, ws)
        cur = GibbsState(hs, state.log_sqrt_ptilde)
        x, log_sqrt_pt, means = resample_visible_layer(model, cur, generator, config, clamp, ws)
        hs[0] = x
        for l in range(2, L + 1, 2):
            hs[l] = resample_latent_layer(model, hs, l, K, generator, keep, ws)
    return GibbsState(hs, log_sqrt_pt), means


def _check_state(model: BiHM, hs: list[Tensor]) -> None:
    if len(hs) != model.n_layers + 1:
        raise ValueError(f"a chain state needs {model.n_layers + 1} layers, got {len(hs)}")
    for l, (h, n) in enumerate(zip(hs, model.sizes)):
        if h.dim() != 2 or h.shape[1] != n or h.shape[0] != hs[0].shape[0]:
            raise ValueError(f"layer {l} of the chain state has shape {tuple(h.shape)}, expected (B, {n})")


@torch.no_grad()
def run_chains(
    model: BiHM,
    state: GibbsState,
    steps: int,
    generator: torch.Generator | None,
    config: GibbsConfig,
    clamp: Clamp | None = None,
    record_trajectory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GibbsResult:
    """``steps`` sweeps of Algorithm 2 from a given state of B chains (see :func:`gibbs_sweep`).

    ``progress(1)`` is called after every sweep. With ``steps = 0`` the result's means are those of
    p(x | h_1) at the start.
    """
    _check_state(model, state.hs)
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    means = torch.sigmoid(model.p_logits(1, state.hs[1]))
    if clamp is not None:
        means = clamp.apply(means)
    traj = [means.detach().cpu()] if record_trajectory else []
    ws = Workspace()
    for _ in range(steps):
        state, means = gibbs_sweep(model, state, generator, config, clamp, ws)
        if record_trajectory:
            traj.append(means.detach().cpu())
        if progress is not None:
            progress(1)
    return GibbsResult(state.hs[0], means, state, traj)


@torch.no_grad()
def run_gibbs(
    model: BiHM,
    n_chains: int,
    steps: int,
    generator: torch.Generator | None,
    config: GibbsConfig,
    record_trajectory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GibbsResult:
    """Algorithm 2: B = ``n_chains`` chains started from ancestral samples (x, h) ~ p, ``steps`` sweeps
    with ``config.K`` proposals per layer. Returns x (B, D), the final means (B, D) and the state."""
    if n_chains < 1:
        raise ValueError(f"need at least one chain, got {n_chains}")
    start = GibbsState(model.sample_p(n_chains, generator))
    return run_chains(model, start, steps, generator, config, None, record_trajectory, progress)


@torch.no_grad()
def inpaint(
    model: BiHM,
    x_tilde: Tensor,
    known_mask: Tensor,
    steps: int,
    generator: torch.Generator | None,
    config: GibbsConfig,
    record_trajectory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> GibbsResult:
    """Inpainting (3.4): one chain per row of the corrupted images x̃ (B, D), started from
    h ~ q(h | x̃) with x = x̃, then Algorithm 2 sweeps in which every x step keeps the units where
    ``known_mask`` ((B, D) or (D,) bool) is True fixed to x̃. Repeat rows of x̃ for several
    completions of one image. Returns the completions (B, D), their means (B, D) and the state.
    """
    if x_tilde.dim() != 2 or x_tilde.shape[1] != model.sizes[0]:
        raise ValueError(f"images to inpaint must be (B, {model.sizes[0]}), got {tuple(x_tilde.shape)}")
    known = known_mask.to(device=x_tilde.device, dtype=torch.bool)
    if known.shape not in (x_tilde.shape, x_tilde.shape[1:]):
        raise ValueError(f"mask of shape {tuple(known.shape)} does not fit images of shape {tuple(x_tilde.shape)}")
    x_tilde = x_tilde.to(device=model.device, dtype=model.dtype)
    known = known.to(model.device)
    hs, _, _ = model.sample_q(x_tilde, 1, generator)
    start = GibbsState([x_tilde] + [h[:, 0] for h in hs[1:]])
    return run_chains(model, start, steps, generator, config, Clamp(x_tilde, known), record_trajectory, progress)


# -- non-MCMC samplers ------------------------------------------------------------------------------
@dataclass
class Draws:
    """Samples of a non-MCMC sampler: the state of every layer ``hs = [x, h_1, …, h_L]`` (each
    (n, n_l)) and the Bernoulli means σ(p(x | h_1)) (n, D)."""

    hs: list[Tensor]
    means: Tensor

    @property
    def x(self) -> Tensor:
        return self.hs[0]


@torch.no_grad()
def sample_ancestral(model: BiHM, n: int, generator: torch.Generator | None) -> Draws:
    """Ancestral samples (x, h) ~ p of the top-down model (not of p*), with the means σ(p(x | h_1))."""
    hs = model.sample_p(n, generator)
    return Draws(hs, torch.sigmoid(model.p_logits(1, hs[1])))


@torch.no_grad()
def sample_importance_resampled(
    model: BiHM,
    n: int,
    n_proposals: int,
    generator: torch.Generator | None,
    inner_K: int = 10,
    log_ptilde_fn: LogPtildeFn | None = None,
    max_rows: int = 65536,
) -> Draws:
    """Sampling-importance-resampling of p*(x, h) with proposal p(x, h): for each of the n outputs draw
    ``n_proposals`` ancestral samples (x, h) ~ p and keep one ∝

        ω = p*(x, h) / p(x, h) ∝ sqrt( p̃*(x) q(h | x) / p(x, h) )

    (the joint weight: it needs no estimate of the intractable p(x); sqrt p̃* is estimated unbiasedly by
    mean_j w_j of (3.5) with ``inner_K`` inner samples, or exact via ``log_ptilde_fn``). Consistent as
    ``n_proposals`` → ∞. Returns the kept samples (every layer) and their means σ(p(x | h_1)).
    """
    if n < 1 or n_proposals < 1:
        raise ValueError(f"need n ≥ 1 and at least one proposal, got n={n}, proposals={n_proposals}")
    kept: list[list[Tensor]] = []
    per = max(1, max_rows // max(1, n_proposals * inner_K))
    for start in range(0, n, per):
        b = min(per, n - start)
        hs = model.sample_p(b * n_proposals, generator)  # each (b·P, n_l), proposals of output i contiguous
        one = [hs[0]] + [h.unsqueeze(1) for h in hs[1:]]
        log_p = model.log_p(one)[:, 0]
        log_q = model.log_q(one)[:, 0]
        log_w = _log_sqrt_ptilde(model, hs[0], inner_K, generator, log_ptilde_fn) + 0.5 * (log_q - log_p)
        idx = _pick(log_w.view(b, n_proposals), generator)
        kept.append([_gather(h.view(b, n_proposals, -1), idx) for h in hs])  # each (b, n_l)
    hs = [torch.cat(layer) for layer in zip(*kept)]
    return Draws(hs, torch.sigmoid(model.p_logits(1, hs[1])))


@dataclass
class LayerwiseResult:
    """Layer-wise generation: the one top-down sample ``top = [x, h_1, …, h_L]`` (each (1, n_l)) and
    n completions below layer ``layer``: every layer's state ``hs`` (each (n, n_l); layers from
    ``layer`` up repeat ``top``), draws ``x = hs[0]`` (n, D) and means σ(p(x | h_1)) (n, D)."""

    layer: int
    top: list[Tensor]
    hs: list[Tensor]
    means: Tensor

    @property
    def x(self) -> Tensor:
        return self.hs[0]


@torch.no_grad()
def layerwise_samples(model: BiHM, layer: int, n: int, generator: torch.Generator | None) -> LayerwiseResult:
    """Layer-wise generation (figures 4.1–4.3): one top-down sample h_L … h_1 ~ p, then n draws
    x, h_1 … h_{l0-1} ~ p(· | h_{l0}) with h_{l0} held fixed (``layer`` = l0 ∈ 1 … L): what a single
    state of layer l0 encodes."""
    L = model.n_layers
    if not 1 <= layer <= L:
        raise ValueError(f"layer {layer} does not exist: this model has latent layers 1 … {L}")
    if n < 1:
        raise ValueError(f"need n ≥ 1 samples, got {n}")
    top = model.sample_p(1, generator)
    below = model.sample_p_below(top[layer].expand(n, -1), layer, generator)  # [x, h_1, …, h_l0]
    hs = below + [h.expand(n, -1) for h in top[layer + 1 :]]
    return LayerwiseResult(layer, top, hs, torch.sigmoid(model.p_logits(1, below[1])))


# -- inpainting scores -------------------------------------------------------------------------------
@dataclass
class InpaintScore:
    """Per image (B,): log-likelihood of the true missing pixels under the completions' Bernoulli
    means, the number of missing pixels and the fraction of missing pixels the completion gets wrong."""

    log_lik: Tensor
    n_missing: Tensor
    error_rate: Tensor


def inpaint_score(means: Tensor, completion: Tensor, x_true: Tensor, known_mask: Tensor, eps: float = 1e-6) -> InpaintScore:
    """Score inpainting: Σ_missing [x log m + (1−x) log(1−m)] with m clamped to [eps, 1−eps], and the
    fraction of missing pixels where the binary ``completion`` differs from ``x_true``. All (B, D);
    ``known_mask`` (B, D) or (D,) bool."""
    missing = ~known_mask.to(torch.bool).expand_as(x_true)
    m = means.clamp(eps, 1 - eps)
    ll = torch.where(missing, x_true * torch.log(m) + (1 - x_true) * torch.log1p(-m), torch.zeros_like(m)).sum(1)
    n_miss = missing.sum(1)
    wrong = (missing & (completion.round() != x_true.round())).sum(1)
    rate = wrong.to(means.dtype) / n_miss.clamp(min=1).to(means.dtype)
    return InpaintScore(ll, n_miss, rate)
