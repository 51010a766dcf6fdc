"""Exact laws of the samplers on tiny models, by enumeration (test oracles).

* :func:`chain_law`: what Algorithm 2's chain converges to when every layer is drawn *exactly* from
  the conditional it targets (the K → ∞ limit of importance resampling) — with the sampler's right
  conditionals (p*(x, h): a check of this oracle), or with the top layer's factor p(h_{L-1} | h_L)
  left out (the authors' script's mistake, ``tiny.without_top_factor``), optionally with visible
  units clamped. A sweep updates the odd latent layers given the even ones, then x and the even
  latent layers given the odd ones (``gibbs.gibbs_sweep``): a two-block Gibbs sampler. With the top
  factor left out the blocks' conditionals belong to no common joint law and the chain settles
  elsewhere; how far is the negative controls' effect size, computed before any chain is run.
* :func:`sir_law`: the exact law of one sampling-importance-resampling draw at a finite number of
  proposals.
* :func:`chain_checks`: Pearson χ² of chains' final states against such a law, on x and on the top
  pair (h_{L-1}, h_L); :func:`detects`: whether that check has the power to see a given wrong law.
"""

from __future__ import annotations

import torch

from bihm_app.engine.exact import _cond_table, all_states, exact_tables, state_index
from bihm_app.engine.model import BiHM
from tests.unit.stats import ALPHA, BETA, chi2_detects, chi2_noncentrality, chi2_threshold, pearson_chi2


def _log_p_below_top(model: BiHM) -> torch.Tensor:
    """log p(h_{L-1} | h_L) over (h_{L-1}, h_L), (2^{n_{L-1}}, 2^{n_L})."""
    L = model.n_layers
    top, below = all_states(model.sizes[L], model.dtype, model.device), all_states(model.sizes[L - 1], model.dtype, model.device)
    return _cond_table(model.p_logits(L, top), below).t()


def _normalise(log_t: torch.Tensor, axes: list[int]) -> torch.Tensor:
    """exp(log_t) normalised over ``axes`` (states with no mass: zeros)."""
    return torch.nan_to_num(torch.exp(log_t - torch.logsumexp(log_t, dim=axes, keepdim=True)), nan=0.0)


@torch.no_grad()
def chain_law(
    model: BiHM,
    omit_top_factor: bool = False,
    known: torch.Tensor | None = None,
    x_known: torch.Tensor | None = None,
    sweeps: int = 4096,
    start: str = "p*",
) -> torch.Tensor:
    """The law of the whole chain state (x, h_1, …, h_L) after ``sweeps`` sweeps of the two-block
    chain with exact conditional draws, as a table (2^D, 2^{n_1}, …, 2^{n_L}) (default: stationary to
    machine precision for these tiny models). The chains start from ``start``: "p*" or "p" (ancestral
    samples, as ``run_gibbs`` starts; the limit does not depend on it). ``known`` (D,) bool and
    ``x_known`` (D,): units held at x̃ (inpainting); the law is then over the consistent x only."""
    L = model.n_layers
    tables = exact_tables(model)
    J = tables.log_pstar_joint  # (2^D, 2^{n_1}, …, 2^{n_L})
    if known is not None:
        xs = all_states(model.sizes[0], model.dtype, model.device)
        consistent = (xs[:, known] == x_known[known].to(xs)).all(1)
        J = J.masked_fill(~consistent.view((-1,) + (1,) * L), -torch.inf)
    J_top = J
    if omit_top_factor:  # the top layer's conditional without ½ log p(h_{L-1} | h_L)
        shape = [1] * (L + 1)
        shape[L - 1], shape[L] = 2 ** model.sizes[L - 1], 2 ** model.sizes[L]
        J_top = J - 0.5 * _log_p_below_top(model).view(shape)
    odd, even = list(range(1, L + 1, 2)), list(range(0, L + 1, 2))
    # the block conditionals: the block holding h_L uses J_top (the other layers of that block are
    # conditionally independent of h_L given the other block, so only h_L's factor changes)
    p_odd = _normalise(J_top if L % 2 == 1 else J, odd)  # p(odd | even)
    p_even = _normalise(J_top if L % 2 == 0 else J, even)  # p(even | odd)
    perm = even + odd
    shape = [2 ** model.sizes[i] for i in perm]
    n_even = int(torch.tensor(shape[: len(even)]).prod())
    to_odd = p_odd.permute(perm).reshape(n_even, -1)  # (even state, odd state)
    to_even = p_even.permute(perm).reshape(n_even, -1).t()  # (odd state, even state)
    M = to_odd @ to_even  # one sweep seen on the even block
    law = torch.exp(torch.logsumexp(J if start == "p*" else tables.log_pxh, dim=odd)).reshape(-1)
    law = law / law.sum()
    steps = sweeps - 1
    while steps > 0:  # law · M^(sweeps − 1) by squaring
        if steps & 1:
            law = law @ M
        M = M @ M
        steps >>= 1
    odd_law = law @ to_odd  # the last sweep: odd block, then the even block given it
    joint = odd_law.unsqueeze(0) * to_even.t()  # (even', odd) = p(odd) p(even' | odd)
    return joint.reshape(shape).permute(torch.argsort(torch.tensor(perm)).tolist())


def marginal(law: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
    """The flattened marginal law of ``layers`` (e.g. (0,) for x, (L-1, L) for the top two) of a
    table over (x, h_1, …, h_L), in the order of ``state_index`` of the concatenated layers."""
    rest = [i for i in range(law.dim()) if i not in layers]
    return law.sum(dim=rest).reshape(-1) if rest else law.reshape(-1)


def top_pair(model: BiHM) -> tuple[int, int]:
    """The layers (L−1, L) whose joint law the top factor p(h_{L-1} | h_L) shapes."""
    return (model.n_layers - 1, model.n_layers)


def states_of(hs: list[torch.Tensor], layers: tuple[int, ...]) -> torch.Tensor:
    """Index of each chain's state of ``layers`` in the order of :func:`marginal`, (B,)."""
    return state_index(torch.cat([hs[i] for i in layers], 1))


def chain_checks(model: BiHM, hs: list[torch.Tensor], law: torch.Tensor, alpha: float = ALPHA) -> dict:
    """Pearson χ² of the chains' final states ``hs`` against ``law`` (a table over (x, h_1, …, h_L))
    on the x-marginal and on the top pair (h_{L-1}, h_L), each at false-alarm rate alpha/2:
    {"x": (statistic, threshold), "top": (…)}. The chains are independent, so their states are
    i.i.d. draws; a correct sampler passes both with probability ≥ 1 − alpha."""
    out = {}
    for name, layers in (("x", (0,)), ("top", top_pair(model))):
        stat, df = pearson_chi2(states_of(hs, layers), marginal(law, layers))
        out[name] = (stat, chi2_threshold(df, alpha / 2))
    return out


def passes(checks: dict) -> bool:
    return all(stat < thr for stat, thr in checks.values())


def detects(wrong: torch.Tensor, right: torch.Tensor, layers: tuple[int, ...], n: int, alpha: float = ALPHA) -> bool:
    """Whether :func:`chain_checks` on n chains drawn from ``wrong`` fails on ``layers`` with
    probability ≥ 1 − BETA, with twice the exact effect needed (``wrong`` is the K → ∞ limit of the
    chains; the sampler's finite-K kernels only approach it)."""
    lam, df = chi2_noncentrality(marginal(wrong, layers), marginal(right, layers), n)
    return chi2_detects(lam, df, alpha / 2, BETA, margin=2.0)


@torch.no_grad()
def sir_law(log_p: torch.Tensor, log_target: torch.Tensor, n_proposals: int, n_grid: int = 4000) -> torch.Tensor:
    """The exact law of one sampling-importance-resampling draw: ``n_proposals`` i.i.d. proposals s
    from p, one kept ∝ ω(s) = target(s)/p(s) (both given as unnormalised log tables over the same
    states, flattened). By 1/a = ∫₀^∞ e^{−ta} dt,

        P(s) = M p(s) ω(s) E[1 / (ω(s) + Σ_{M−1} ω)] = M p(s) ω(s) ∫₀^∞ e^{−t ω(s)} φ(t)^{M−1} dt,

    φ(t) = Σ_s p(s) e^{−t ω(s)}, a one-dimensional integral (trapezoid on a log grid; ω is scaled to
    E_p ω = 1, so the integrand lives at t ~ 1/M). Tends to the target as M → ∞; at finite M it is
    what the sampler really draws from, so a test against it has no resampling bias to allow for."""
    p = torch.exp(log_p - torch.logsumexp(log_p, 0)).double().cpu()
    w = torch.exp(log_target - torch.logsumexp(log_target, 0) - (log_p - torch.logsumexp(log_p, 0))).double().cpu()
    keep = p > 0
    p, w = p[keep], w[keep]
    t = torch.logspace(-6, 3, n_grid, dtype=torch.float64, device=p.device) / n_proposals
    log_phi = torch.logsumexp(torch.log(p).unsqueeze(1) - t.unsqueeze(0) * w.unsqueeze(1), 0)  # (grid,)
    integrand = torch.exp(-t.unsqueeze(0) * w.unsqueeze(1) + (n_proposals - 1) * log_phi.unsqueeze(0))
    law = torch.zeros(keep.numel(), dtype=torch.float64, device=p.device)
    law[keep] = n_proposals * p * w * torch.trapezoid(integrand, t, dim=1)
    return law
