"""Algorithm 2 against exact enumeration: the Gibbs chain leaves p*(x) invariant, inpainting samples
p*(x_missing | x_known), and dropping the top layer's factor p(h_{L-1} | h_L) (the authors' script's
mistake) is detected. Also the ancestral sampler, layer-wise generation and masks."""

import math

import pytest
import torch

from bihm_app.engine import gibbs
from bihm_app.engine.exact import all_states, exact_tables, state_index
from bihm_app.engine.masks import mask_from_spec
from bihm_app.engine.model import make_generator
from bihm_app.engine.gibbs import GibbsConfig
from tests.unit.tiny import maybe_without_top_factor, tiny_model

N_CHAINS = 20_000


def chi2_threshold(df: int) -> float:
    """≈ the 99.99 % quantile of χ²(df) (Wilson–Hilferty): a correct sampler fails once in 10⁴ runs."""
    z = 3.719
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(samples: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson χ² of independent samples (rows of 0/1) against the exact distribution over all states."""
    obs = torch.bincount(state_index(samples), minlength=probs.numel()).double()
    exp = samples.shape[0] * probs
    return float(((obs - exp) ** 2 / exp).sum())


@pytest.fixture(scope="module")
def setup():
    m = tiny_model((4, 3, 2), seed=3, scale=2.0)  # strong weights: far from uniform, the top factor matters
    t = exact_tables(m)
    return m, t, (lambda x: t.log_ptilde[state_index(x)])


@pytest.mark.parametrize("omit_top_factor", [False, True])
def test_gibbs_chains_converge_to_p_star(setup, omit_top_factor):
    """20,000 independent chains (25 sweeps, keep_current, exact p̃*): Pearson χ² against p* below
    its 99.99 % quantile (df 15) and TV < 0.02, far from p(x); with the top factor dropped the same
    χ² must exceed it. Catches any wrong factor of (3.9) or of the x-step weight (on this strongly
    coupled model each moves the stationary law by ≥ 0.1 in TV: χ² in the thousands) and chains
    that do not move (they would stay at p)."""
    m, t, fn = setup
    # many independent chains from ancestral samples of p; the final states are i.i.d. draws
    with maybe_without_top_factor(omit_top_factor):
        res = gibbs.run_gibbs(m, N_CHAINS, 25, make_generator(1), GibbsConfig(10, log_ptilde_fn=fn, keep_current=True))
    p_star = torch.exp(t.log_pstar)
    stat = chi2(res.x, p_star)
    tv = 0.5 * float((torch.bincount(state_index(res.x), minlength=16).double() / N_CHAINS - p_star).abs().sum())
    if omit_top_factor:  # the wrong target must be detected by the same check
        assert stat > chi2_threshold(15), (stat, tv)
    else:
        assert stat < chi2_threshold(15), (stat, tv)
        assert tv < 0.02
    # ... and the chains really moved away from the top-down model's p(x)
    assert chi2(res.x, torch.exp(t.log_px)) > chi2_threshold(15) or omit_top_factor


def test_plain_algorithm_2_with_many_proposals_is_close_to_p_star(setup):
    """Algorithm 2 as stated (fresh proposals, K = 100, 10⁴ chains): χ² against p* below its 99.99 %
    quantile. Catches an error in the proposal density of the importance weights (the ½p + ½q
    mixture), which leaves a bias that does not vanish as K grows."""
    m, t, fn = setup
    res = gibbs.run_gibbs(m, 10_000, 10, make_generator(2), GibbsConfig(100, log_ptilde_fn=fn, keep_current=False))
    assert chi2(res.x, torch.exp(t.log_pstar)) < chi2_threshold(15)


@pytest.mark.parametrize("omit_top_factor", [False, True])
def test_inpainting_samples_the_exact_conditional(setup, omit_top_factor):
    """20,000 chains with x_3, x_4 clamped: χ² of (x_1, x_2) against p*(x_1, x_2 | x_3, x_4) below its
    99.99 % quantile (df 3), above it with the top factor dropped. Catches clamping after weighting
    (the known units' factor would tilt the weights) and clamped pixels that move."""
    m, t, fn = setup
    known = torch.tensor([False, False, True, True])
    x_tilde = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64).expand(N_CHAINS, 4)
    with maybe_without_top_factor(omit_top_factor):
        res = gibbs.inpaint(m, x_tilde, known, 20, make_generator(3), GibbsConfig(10, log_ptilde_fn=fn, keep_current=True))
    assert bool((res.x[:, 2:] == x_tilde[:, 2:]).all())  # known pixels stay clamped
    states = all_states(4)
    rows = (states[:, 2] == 1) & (states[:, 3] == 0)
    cond = torch.exp(t.log_pstar[rows] - torch.logsumexp(t.log_pstar[rows], 0))  # p*(x1, x2 | x3=1, x4=0)
    stat = chi2(res.x[:, :2], cond)
    if omit_top_factor:
        assert stat > chi2_threshold(3), stat
    else:
        assert stat < chi2_threshold(3), stat


def test_ancestral_sampler_matches_exact_p(setup):
    """20,000 ancestral draws: χ² against the exact p(x) below its 99.99 % quantile. Catches a Bernoulli
    draw off by ≳ 1 % in probability (a threshold on logits instead of σ, a biased uniform) or a
    layer taken in the wrong order."""
    m, t, _ = setup
    d = gibbs.sample_ancestral(m, N_CHAINS, make_generator(4))
    x, means = d.x, d.means
    assert chi2(x, torch.exp(t.log_px)) < chi2_threshold(15)
    assert means.shape == x.shape and bool(((means >= 0) & (means <= 1)).all())
    # every layer's state comes back: the joint (x, h_1, h_2) follows p(x, h) (512 states, χ² df 511)
    assert [h.shape[1] for h in d.hs] == [4, 3, 2]
    assert chi2(torch.cat(d.hs, 1), torch.exp(t.log_pxh).flatten()) < chi2_threshold(511)


def test_importance_resampling_approaches_p_star(setup):
    """TV to p* with 2000 proposals below half of that with 50 and below 0.04, while p starts 0.7
    away: catches resampling weights that do not target p* (the TV would stall). The kept latent
    states: the joint (x, h_1, h_2) within 0.2 in TV of the exact p*(x, h) (0.11 measured; 0.33 with
    the h of another kept sample, 0.7 for h drawn from p): catches states gathered from another
    proposal than the kept x, or means that are not σ(p(x | h_1)) of the kept h_1."""
    m, t, fn = setup
    p_star = torch.exp(t.log_pstar)
    joint_star = torch.exp(t.log_pstar_joint).flatten()

    def tv(n_proposals):
        d = gibbs.sample_importance_resampled(m, 4_000, n_proposals, make_generator(n_proposals), log_ptilde_fn=fn)
        assert torch.equal(d.means, torch.sigmoid(m.p_logits(1, d.hs[1])))
        tv_joint = 0.5 * float((torch.bincount(state_index(torch.cat(d.hs, 1)), minlength=512).double() / 4_000 - joint_star).abs().sum())
        return 0.5 * float((torch.bincount(state_index(d.x), minlength=16).double() / 4_000 - p_star).abs().sum()), tv_joint

    tv_p = 0.5 * float((torch.exp(t.log_px) - p_star).abs().sum())  # where the proposal p starts: ≈ 0.7
    (small, _), (large, large_joint) = tv(50), tv(2_000)
    assert large < small / 2 and large < 0.04 and tv_p > 0.5  # consistent as the proposals grow
    assert large_joint < 0.2


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
