"""Algorithm 2 samples p*: exact-enumeration checks on tiny float64 BiHMs.

Two kinds of checks:

* the per-layer conditionals the sampler weights by are exactly p*'s conditionals (deterministic,
  every configuration enumerated);
* many independent chains, started as Algorithm 2 starts them (ancestral samples of p), end in p*:
  their final states are i.i.d. draws, checked by Pearson's χ² against the exact p* on x and on the
  top pair (h_{L-1}, h_L) (``exact_chains.chain_checks``, false-alarm rate 10⁻⁴ per test). The same
  check must fail when the top layer's factor p(h_{L-1} | h_L) is left out of its target
  (``tests/unit/tiny.py:without_top_factor``): the chain models are built so that this error is
  large (``tiny.top_factor_model``), and each test first computes the wrong chain's law exactly
  (``exact_chains.chain_law``, the K → ∞ limit) and asserts that the check detects it with
  probability ≥ 1 − 10⁻⁴ at half its effect — so the negative controls hold for any seed.
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
from tests.unit.exact_chains import chain_checks, chain_law, detects, passes, top_pair
from tests.unit.tiny import maybe_without_top_factor, tiny_model, top_factor_model, without_top_factor

#: (sizes, seed, scale): strongly coupled random tiny models for the deterministic checks.
TWO_LAYER = ((5, 3, 2), 9, 3.0)
THREE_LAYER = ((5, 2, 2, 2), 33, 3.0)
#: (sizes, seed) of the chain tests' models (``tiny.top_factor_model``).
CHAIN_TWO_LAYER = ((5, 3, 2), 9)
CHAIN_THREE_LAYER = ((5, 2, 2, 2), 33)
N_CHAINS = 2000


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
def _final_states(m, tables, steps, K, keep_current, omit, n_chains=N_CHAINS, seed=7, inner_K=10, exact=True):
    with maybe_without_top_factor(omit):
        cfg = GibbsConfig(K, inner_K=inner_K, log_ptilde_fn=_exact_fn(tables) if exact else None, keep_current=keep_current)
        return run_gibbs(m, n_chains, steps, make_generator(seed), cfg).state.hs


def _chains_find_p_star_and_not_without_the_top_factor(spec, steps, K, keep_current, n_chains=N_CHAINS):
    sizes, seed = spec
    m = top_factor_model(sizes, seed)
    t = exact_tables(m)
    p_star, p = t.log_pstar_joint.exp(), t.log_pxh.exp()  # laws over (x, h_1, …, h_L)
    # the check has the power to see the error and a chain that stays where it starts (at p)
    assert detects(chain_law(m, omit_top_factor=True), p_star, top_pair(m), n_chains)
    assert detects(p, p_star, top_pair(m), n_chains)
    right = chain_checks(m, _final_states(m, t, steps, K, keep_current, omit=False, n_chains=n_chains), p_star)
    assert passes(right), right
    wrong = chain_checks(m, _final_states(m, t, steps, K, keep_current, omit=True, n_chains=n_chains), p_star)
    assert not passes(wrong), wrong  # the script's variant is detected


@pytest.mark.parametrize("spec", [CHAIN_TWO_LAYER, CHAIN_THREE_LAYER])
def test_gibbs_chains_converge_to_p_star_and_fail_without_the_top_factor(spec):
    """Iterated importance resampling (``keep_current``: exactly p*-invariant at any K), 2000 chains
    of 40 sweeps with K = 10 from ancestral samples of p: their final states pass χ² against p* on x
    and on (h_{L-1}, h_L); with the top factor dropped they fail it. Catches the script's mistake
    (its power checked exactly first), any other wrong factor that moves the top pair or x, and
    chains that do not move (they would stay at p, which the check also provably detects)."""
    _chains_find_p_star_and_not_without_the_top_factor(spec, steps=40, K=10, keep_current=True)


def test_algorithm2_as_stated_converges_to_p_star_with_many_proposals():
    """Plain Algorithm 2 (K fresh proposals each step) is exact only as K → ∞; at K = 250 its bias
    is below what 1000 chains can see, and the top factor's omission is still detected."""
    _chains_find_p_star_and_not_without_the_top_factor(CHAIN_TWO_LAYER, steps=10, K=250, keep_current=False, n_chains=1000)


def test_iterated_resampling_with_estimated_ptilde_is_exact_for_small_K():
    """``keep_current`` with inner_K = 1: the weight is linear in the unbiased estimate of sqrt p̃*,
    so the chain still targets p* exactly (pseudo-marginal argument), even with K = 4 proposals:
    4000 chains of 80 sweeps pass χ² against p* on x and (h_{L-1}, h_L)."""
    sizes, seed = CHAIN_TWO_LAYER
    m = top_factor_model(sizes, seed)
    t = exact_tables(m)
    hs = _final_states(m, t, 80, 4, True, omit=False, n_chains=4000, seed=3, inner_K=1, exact=False)
    checks = chain_checks(m, hs, t.log_pstar_joint.exp())
    assert passes(checks), checks


def test_inpainting_chain_samples_p_star_of_the_missing_pixels_given_the_known():
    """3000 clamped chains of 60 sweeps: their states pass χ² against the exact p*(x_missing, h |
    x_known) on x and (h_{L-1}, h_L), and fail it without the top factor (power checked exactly
    first); the known pixels never move. Catches clamped units leaking into the weights and a wrong
    conditional."""
    sizes, seed = CHAIN_TWO_LAYER
    m = top_factor_model(sizes, seed)
    t = exact_tables(m)
    D = sizes[0]
    xs = all_states(D)
    known = torch.tensor([True, True, False, False, True])
    x_known = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    consistent = (xs[:, known] == x_known[known]).all(1)
    J = t.log_pstar_joint.masked_fill(~consistent.view(-1, 1, 1), -torch.inf)
    cond = torch.exp(J - torch.logsumexp(J.flatten(), 0))  # p*(x, h | x_known) over (x, h_1, h_2)
    n_chains = 3000
    assert detects(chain_law(m, True, known, x_known), cond, top_pair(m), n_chains)
    x_tilde = x_known.expand(n_chains, D).clone()
    checks = {}
    for omit in (False, True):
        with maybe_without_top_factor(omit):
            r = inpaint(m, x_tilde, known, 60, make_generator(5), GibbsConfig(10, log_ptilde_fn=_exact_fn(t), keep_current=True))
        assert torch.equal(r.x[:, known], x_tilde[:, known])  # the known pixels never move
        checks[omit] = chain_checks(m, r.state.hs, cond)
    assert passes(checks[False]), checks
    assert not passes(checks[True]), checks


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
