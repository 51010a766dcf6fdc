"""Algorithm 2 samples p*: exact-enumeration checks on tiny float64 BiHMs.

Two kinds of checks:

* the per-layer conditionals the sampler weights by are exactly p*'s conditionals (deterministic,
  every configuration enumerated);
* many independent chains, started as Algorithm 2 starts them (ancestral samples of p), end in p*:
  the total-variation distance between the chains' final states and the exact p* is within the
  Monte-Carlo tolerance of an i.i.d. sample of the same size (its 99.9 % quantile, simulated from the
  exact distribution, plus 0.01 for burn-in and finite-K bias). The same check must fail when the
  top layer's factor p(h_{L-1} | h_L) is left out of its target (``tests/unit/tiny.py:without_top_factor``): the models
  below were chosen (by exact computation of the wrong chain's stationary law) so that this drops
  the x-marginal at least 0.1 in TV away from p*.
"""

import itertools

import pytest
import torch

from bihm_app.engine.exact import all_states, exact_tables, state_index
from bihm_app.engine.gibbs import (
    GibbsConfig,
    Clamp,
    GibbsState,
    inpaint,
    latent_log_target,
    resample_visible_layer,
    run_gibbs,
)
from bihm_app.engine.model import bernoulli_log_prob, make_generator
from tests.unit.tiny import maybe_without_top_factor, tiny_model, without_top_factor

#: (sizes, seed, scale): strongly coupled tiny models where dropping the top factor is visible in x.
TWO_LAYER = ((5, 3, 2), 9, 3.0)
THREE_LAYER = ((5, 2, 2, 2), 33, 3.0)


def _tv(samples_idx: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(samples_idx, minlength=probs.numel()).double()
    return 0.5 * float((counts / samples_idx.numel() - probs).abs().sum())


def _iid_tolerance(probs: torch.Tensor, n: int, reps: int = 2000, q: float = 0.999) -> float:
    """The q-quantile of the TV distance of an i.i.d. sample of size n from ``probs``, plus 0.01."""
    g = make_generator(12345)
    draws = torch.multinomial(probs.float().expand(reps, -1), n, replacement=True, generator=g)
    counts = torch.zeros(reps, probs.numel(), dtype=torch.float64).scatter_add_(
        1, draws, torch.ones_like(draws, dtype=torch.float64)
    )
    tvs = 0.5 * (counts / n - probs).abs().sum(1)
    return float(torch.quantile(tvs, q)) + 0.01


def _exact_fn(tables):
    return lambda x: tables.log_ptilde[state_index(x)]


# -- the conditionals themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("spec", [TWO_LAYER, THREE_LAYER])
def test_latent_targets_are_the_exact_conditionals_of_p_star(spec):
    """Deterministic: for every layer and (a seventh of) all states of its neighbours, the sampler's
    target over all states of the layer is p*'s conditional (atol 1e-10), and not without the top
    factor. Catches any missing, extra or reversed factor of (3.9)."""
    sizes, seed, scale = spec
    m = tiny_model(sizes, seed, scale)
    J = exact_tables(m).log_pstar_joint  # (2^D, 2^{n_1}, …)
    states = [all_states(n) for n in m.sizes]
    L = m.n_layers
    for l in range(1, L + 1):
        others = [range(2 ** n) if j != l else [0] for j, n in enumerate(m.sizes)]
        for idx in itertools.islice(itertools.product(*others), 0, None, 7):
            hs = [states[j][i : i + 1] for j, i in enumerate(idx)]
            cand = states[l].unsqueeze(0)  # every state of layer l, (1, 2^{n_l}, n_l)
            ours = torch.log_softmax(latent_log_target(m, hs, l, cand)[0], 0)
            sl = list(idx)
            sl[l] = slice(None)
            exact = torch.log_softmax(J[tuple(sl)], 0)
            assert torch.allclose(ours, exact, atol=1e-10), (l, idx)
            if l == L:
                with without_top_factor() as wrong_target:
                    wrong = torch.log_softmax(wrong_target(m, hs, l, cand)[0], 0)
                assert not torch.allclose(wrong, exact, atol=1e-3)


def test_visible_weights_times_proposal_are_the_exact_conditional_of_p_star():
    """Deterministic: the x-step weight times its proposal p(x | h_1), over all x, is p*(x | h) (atol
    1e-10). Catches a missing q(h_1 | x) or p(x | h_1) factor, or a wrong power of p̃*."""
    sizes, seed, scale = TWO_LAYER
    m = tiny_model(sizes, seed, scale)
    t = exact_tables(m)
    J = t.log_pstar_joint
    xs, h1s, h2s = (all_states(n) for n in m.sizes)
    for i1, i2 in [(0, 0), (3, 1), (5, 2), (7, 3)]:
        h1 = h1s[i1 : i1 + 1]
        a = m.p_logits(1, h1).unsqueeze(1)
        # the x-step log-weight plus log proposal, over every x: must be p*(x | h) up to a constant
        log_w = 0.5 * t.log_ptilde + 0.5 * (bernoulli_log_prob(h1, m.q_logits(1, xs)) - bernoulli_log_prob(xs, a[0]))
        ours = torch.log_softmax(log_w + bernoulli_log_prob(xs, a[0]), 0)
        assert torch.allclose(ours, torch.log_softmax(J[:, i1, i2], 0), atol=1e-10)


# -- chains --------------------------------------------------------------------------------------------
def _chain_tvs(spec, steps, K, keep_current, n_chains=2000):
    sizes, seed, scale = spec
    m = tiny_model(sizes, seed, scale)
    t = exact_tables(m)
    p_star = t.log_pstar.exp()
    tvs = {}
    for omit in (False, True):
        with maybe_without_top_factor(omit):
            r = run_gibbs(m, n_chains, steps, make_generator(7), GibbsConfig(K, log_ptilde_fn=_exact_fn(t), keep_current=keep_current))
        tvs[omit] = _tv(state_index(r.x), p_star)
    ancestral = _tv(state_index(m.sample_p(n_chains, make_generator(7))[0]), p_star)
    return tvs, ancestral, _iid_tolerance(p_star, n_chains)


@pytest.mark.parametrize("spec", [TWO_LAYER, THREE_LAYER])
def test_gibbs_chains_converge_to_p_star_and_fail_without_the_top_factor(spec):
    """Iterated importance resampling (``keep_current``): exactly p*-invariant at any K."""
    tvs, ancestral, tol = _chain_tvs(spec, steps=40, K=10, keep_current=True)
    assert ancestral > 2 * tol  # the chains start far from p* …
    assert tvs[False] < tol, (tvs, tol)  # … end in it …
    assert tvs[True] > tol, (tvs, tol)  # … and the script's variant does not


def test_algorithm2_as_stated_converges_to_p_star_with_many_proposals():
    """Plain Algorithm 2 (K fresh proposals each step) is exact only as K → ∞; K = 250 is close."""
    tvs, ancestral, tol = _chain_tvs(TWO_LAYER, steps=10, K=250, keep_current=False)
    assert ancestral > 2 * tol
    assert tvs[False] < tol, (tvs, tol)
    assert tvs[True] > tol, (tvs, tol)


def test_iterated_resampling_with_estimated_ptilde_is_exact_for_small_K():
    """``keep_current`` with inner_K = 1: the weight is linear in the unbiased estimate of sqrt p̃*,
    so the chain still targets p* exactly (pseudo-marginal argument), even with K = 4 proposals."""
    sizes, seed, scale = TWO_LAYER
    m = tiny_model(sizes, seed, scale)
    p_star = exact_tables(m).log_pstar.exp()
    n_chains = 4000
    r = run_gibbs(m, n_chains, 80, make_generator(3), GibbsConfig(4, inner_K=1, keep_current=True))
    assert _tv(state_index(r.x), p_star) < _iid_tolerance(p_star, n_chains)


def test_inpainting_chain_samples_p_star_of_the_missing_pixels_given_the_known():
    """3000 clamped chains: TV to the exact p*(x_missing | x_known) below the 99.9 % quantile of an
    i.i.d. sample (+0.01), above it without the top factor; the known pixels never move. Catches
    clamped units leaking into the weights and a wrong conditional."""
    sizes, seed, scale = TWO_LAYER
    m = tiny_model(sizes, seed, scale)
    t = exact_tables(m)
    D = sizes[0]
    xs = all_states(D)
    known = torch.tensor([True, True, False, False, True])
    x_known = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    consistent = (xs[:, known] == x_known[known]).all(1)
    cond = torch.where(consistent, t.log_pstar, torch.full_like(t.log_pstar, -torch.inf)).softmax(0)
    n_chains = 3000
    x_tilde = x_known.expand(n_chains, D).clone()
    tol = _iid_tolerance(cond[consistent], n_chains)
    tvs = {}
    for omit in (False, True):
        with maybe_without_top_factor(omit):
            r = inpaint(m, x_tilde, known, 60, make_generator(5), GibbsConfig(10, log_ptilde_fn=_exact_fn(t), keep_current=True))
        assert torch.equal(r.x[:, known], x_tilde[:, known])  # the known pixels never move
        tvs[omit] = _tv(state_index(r.x), cond)
    assert tvs[False] < tol, (tvs, tol)
    assert tvs[True] > tol, (tvs, tol)


def test_clamped_visible_step_weights_clamped_proposals():
    """Regression guard: clamping after resampling (instead of before weighting) would leave the known
    units in the candidates' weights; every resampled x must already agree with x̃."""
    m = tiny_model((5, 3, 2), 1, 1.0)
    g = make_generator(0)
    hs = m.sample_p(50, g)
    known = torch.tensor([True, True, False, False, True])
    clamp = Clamp(torch.ones(50, 5, dtype=torch.float64), known)
    x, _, means = resample_visible_layer(m, GibbsState(hs), g, GibbsConfig(8, inner_K=2), clamp)
    assert bool((x[:, known] == 1).all()) and bool((means[:, known] == 1).all())
