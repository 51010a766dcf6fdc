"""Algorithm 2 against exact enumeration: the Gibbs chain leaves p*(x) invariant, inpainting samples
p*(x_missing | x_known), and dropping the top layer's factor p(h_{L-1} | h_L) (the authors' script's
mistake) is detected. Also the ancestral sampler, layer-wise generation and masks."""

import pytest
import torch

from bihm_app.engine import gibbs
from bihm_app.engine.exact import all_states, exact_tables, state_index
from bihm_app.engine.masks import mask_from_spec
from bihm_app.engine.model import make_generator
from bihm_app.engine.gibbs import GibbsConfig
from tests.unit.exact_chains import chain_checks, chain_law, detects, passes, sir_law, top_pair
from tests.unit.stats import chi2_detects, chi2_noncentrality, chi2_threshold, pearson_chi2
from tests.unit.tiny import far_from_p_model, maybe_without_top_factor, tiny_model, top_factor_model

N_CHAINS = 20_000


@pytest.fixture(scope="module")
def setup():
    m = top_factor_model((4, 3, 2), seed=3)  # leaving out the top factor is a large error by construction
    t = exact_tables(m)
    return m, t, (lambda x: t.log_ptilde[state_index(x)])


@pytest.mark.parametrize("omit_top_factor", [False, True])
def test_gibbs_chains_converge_to_p_star(setup, omit_top_factor):
    """20,000 independent chains (25 sweeps, keep_current, exact p̃*) from ancestral samples of p:
    Pearson χ² of their states against p* on x and on (h_1, h_2) below the 99.99 % quantile; with the
    top factor dropped the same check fails. Before sampling, the exact laws of the wrong chain
    (K → ∞) and of the start (p) are checked to be detected with probability 1 − 10⁻⁴ at half their
    effect. Catches the script's mistake, any other wrong factor of (3.9) or of the x-step weight
    that moves these laws by more than the check's resolution, and chains that do not move."""
    m, t, fn = setup
    p_star = t.log_pstar_joint.exp()
    wrong_law = chain_law(m, omit_top_factor=True)
    assert detects(wrong_law if omit_top_factor else t.log_pxh.exp(), p_star, top_pair(m), N_CHAINS)
    # many independent chains from ancestral samples of p; the final states are i.i.d. draws
    with maybe_without_top_factor(omit_top_factor):
        res = gibbs.run_gibbs(m, N_CHAINS, 25, make_generator(1), GibbsConfig(10, log_ptilde_fn=fn, keep_current=True))
    checks = chain_checks(m, res.state.hs, p_star)
    assert passes(checks) != omit_top_factor, checks  # the wrong target must be detected by the same check
    if not omit_top_factor:  # ... and the chains really moved away from the top-down model p
        assert not passes(chain_checks(m, res.state.hs, t.log_pxh.exp()))


def test_plain_algorithm_2_with_many_proposals_is_close_to_p_star(setup):
    """Algorithm 2 as stated (fresh proposals, K = 100, 10⁴ chains): χ² against p* on x and (h_1, h_2)
    below the 99.99 % quantile. Catches an error in the proposal density of the importance weights
    (the ½p + ½q mixture), which leaves a bias that does not vanish as K grows."""
    m, t, fn = setup
    res = gibbs.run_gibbs(m, 10_000, 10, make_generator(2), GibbsConfig(100, log_ptilde_fn=fn, keep_current=False))
    checks = chain_checks(m, res.state.hs, t.log_pstar_joint.exp())
    assert passes(checks), checks


@pytest.mark.parametrize("omit_top_factor", [False, True])
def test_inpainting_samples_the_exact_conditional(setup, omit_top_factor):
    """20,000 chains with x_3, x_4 clamped: χ² of (x_1, x_2) and of (h_1, h_2) against
    p*(· | x_3, x_4) below the 99.99 % quantile, above it with the top factor dropped (its power
    checked exactly first). Catches clamping after weighting (the known units' factor would tilt the
    weights) and clamped pixels that move."""
    m, t, fn = setup
    known = torch.tensor([False, False, True, True])
    x_tilde = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64).expand(N_CHAINS, 4)
    states = all_states(4)
    rows = (states[:, 2] == 1) & (states[:, 3] == 0)
    J = t.log_pstar_joint.masked_fill(~rows.view(-1, 1, 1), -torch.inf)
    cond = torch.exp(J - torch.logsumexp(J.flatten(), 0))  # p*(x, h | x_3 = 1, x_4 = 0)
    if omit_top_factor:
        assert detects(chain_law(m, True, known, x_tilde[0]), cond, top_pair(m), N_CHAINS)
    with maybe_without_top_factor(omit_top_factor):
        res = gibbs.inpaint(m, x_tilde, known, 20, make_generator(3), GibbsConfig(10, log_ptilde_fn=fn, keep_current=True))
    assert bool((res.x[:, 2:] == x_tilde[:, 2:]).all())  # known pixels stay clamped
    checks = chain_checks(m, res.state.hs, cond)
    assert passes(checks) != omit_top_factor, checks


def test_ancestral_sampler_matches_exact_p(setup):
    """20,000 ancestral draws: χ² against the exact p(x) below its 99.99 % quantile. Catches a Bernoulli
    draw off by ≳ 1 % in probability (a threshold on logits instead of σ, a biased uniform) or a
    layer taken in the wrong order."""
    m, t, _ = setup
    d = gibbs.sample_ancestral(m, N_CHAINS, make_generator(4))
    x, means = d.x, d.means
    stat, df = pearson_chi2(state_index(x), torch.exp(t.log_px))
    assert stat < chi2_threshold(df), stat
    assert means.shape == x.shape and bool(((means >= 0) & (means <= 1)).all())
    # every layer's state comes back: the joint (x, h_1, h_2) follows p(x, h) (512 states, rare ones pooled)
    assert [h.shape[1] for h in d.hs] == [4, 3, 2]
    stat, df = pearson_chi2(state_index(torch.cat(d.hs, 1)), torch.exp(t.log_pxh).flatten())
    assert stat < chi2_threshold(df), stat


def test_importance_resampling_draws_its_exact_law():
    """4000 importance-resampled draws with 200 proposals from p(x, h) each, on a model whose p* is far
    from p (``tiny.far_from_p_model``): the kept states (x, h_1, h_2) pass χ² against the exact law of
    such a draw (``sir_law``, which tends to p*(x, h) as the proposals grow; rare states pooled) below
    its 99.99 % quantile, and x fails it against p — that law's distance from p first checked to be
    detected with probability 1 − 10⁻⁴ at half of it; the means are σ(p(x | h_1)) of the kept h_1.
    Catches a pick that ignores the weights (the draws would stay at p), weights for another target
    or a wrong proposal density (the law moves), and latent states gathered from another proposal
    than the kept x."""
    m = far_from_p_model((4, 3, 2), seed=3)
    t = exact_tables(m)
    n, M = 4_000, 200
    joint = sir_law(t.log_pxh.flatten(), t.log_pstar_joint.flatten(), M)  # over (x, h_1, h_2)
    assert abs(float(joint.sum()) - 1) < 1e-4  # the quadrature
    law, p = joint.view(16, -1).sum(1), torch.exp(t.log_px)
    lam, df = chi2_noncentrality(p, law, n)
    assert chi2_detects(lam, df, margin=2.0)  # draws of p would be detected
    d = gibbs.sample_importance_resampled(m, n, M, make_generator(M), log_ptilde_fn=lambda v: t.log_ptilde[state_index(v)])
    assert torch.equal(d.means, torch.sigmoid(m.p_logits(1, d.hs[1])))
    stat, df = pearson_chi2(state_index(torch.cat(d.hs, 1)), joint)
    assert stat < chi2_threshold(df), stat
    stat_p, df_p = pearson_chi2(state_index(d.x), p)
    assert stat_p > chi2_threshold(df_p), stat_p


def test_layerwise_generation_holds_the_chosen_layer_fixed():
    m = tiny_model((6, 4, 3, 2), seed=1)
    res = gibbs.layerwise_samples(m, 2, 50, make_generator(0))
    assert res.x.shape == (50, 6) and res.means.shape == (50, 6)
    assert len(res.top) == 4 and res.top[2].shape == (1, 3)
    # every layer's state: the chosen layer and those above it are the one top-down sample's
    assert [h.shape for h in res.hs] == [(50, 6), (50, 4), (50, 3), (50, 2)]
    assert all(torch.equal(res.hs[l], res.top[l].expand(50, -1)) for l in (2, 3))
    # completions below layer 2 are draws of p(x | h_2) for that one h_2: they vary
    assert len({tuple(r.tolist()) for r in res.x}) > 1
    with pytest.raises(ValueError, match="layer 4 does not exist"):
        gibbs.layerwise_samples(m, 4, 5, None)


def test_masks():
    assert int(mask_from_spec("bottom", 784, (28, 28)).sum()) == 392
    assert bool(mask_from_spec("bottom", 784, (28, 28)).view(28, 28)[14:].all())
    assert bool(mask_from_spec("left", 784, (28, 28)).view(28, 28)[:, :14].all())
    assert int(mask_from_spec("random:0.25", 100, None, seed=1).sum()) == 25
    assert not torch.equal(mask_from_spec("random:0.5", 100, None, seed=1), mask_from_spec("random:0.5", 100, None, seed=2))
    for bad in ("diagonal", "random:x", "random:1.5"):
        with pytest.raises(ValueError):
            mask_from_spec(bad, 784, (28, 28))


def test_inpaint_rejects_a_mask_of_the_wrong_size(setup):
    m, _, _ = setup
    with pytest.raises(ValueError, match="mask"):
        gibbs.inpaint(m, torch.zeros(2, 4, dtype=torch.float64), torch.zeros(5, dtype=torch.bool), 1, None, GibbsConfig(2))
