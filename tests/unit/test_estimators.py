"""Importance-sampling estimators converge to the exact values within their own standard errors."""

import math

import pytest
import torch

from bihm_app.engine.estimators import estimate_log_z2, evaluate, log_p_star, point_estimates
from bihm_app.engine.exact import all_states, exact_tables
from bihm_app.engine.model import make_generator
from tests.unit.tiny import tiny_model

Z_TOL = 4.5  # |estimate − exact| / SE; with ~30 comparisons per test a 4.5σ excursion has p ≈ 2e-4


@pytest.fixture(scope="module")
def model_and_exact():
    m = tiny_model((6, 4, 3), seed=2)
    return m, exact_tables(m)


@pytest.mark.parametrize("K", [1_000, 30_000])
def test_point_estimates_match_exact_within_se(model_and_exact, K):
    """16 visible states at K = 10³ and 3·10⁴, streamed in chunks of 997: log p̃* and log p within
    4.5 SE of exact, the reported SE within 35 % of the exact delta-method SE, ESS converging.
    Catches a wrong weight (log p − log q instead of ½(…) moves log p̃* by nats), samples lost or
    counted twice at chunk boundaries (n and the SE change), an SE off by a constant (√2, K vs n)."""
    m, t = model_and_exact
    X = all_states(6)[::4]  # 16 visible configurations
    est = point_estimates(m, X, K, make_generator(K), k_chunk=997)  # odd chunk: streaming over K
    exact_pt, exact_p = t.log_ptilde[::4], t.log_px[::4]
    z_pt = (est.log_ptilde - exact_pt) / est.log_ptilde_se
    z_p = (est.log_p - exact_p) / est.log_p_se
    assert float(z_pt.abs().max()) < Z_TOL, z_pt
    assert float(z_p.abs().max()) < Z_TOL, z_p
    # the reported SE is the estimator's real spread: it matches the exact delta-method SE
    lp, lq = t.log_pxh[::4].flatten(1), t.log_qhx[::4].flatten(1)
    log_w = 0.5 * (lp - lq)
    e_w = torch.logsumexp(lq + log_w, 1)
    e_w2 = torch.logsumexp(lq + 2 * log_w, 1)
    exact_se = 2 * torch.sqrt((torch.exp(e_w2 - 2 * e_w) - 1) / K)
    assert torch.allclose(est.log_ptilde_se, exact_se, rtol=0.35)
    # ESS fraction converges to (E w)² / E w² (a ratio estimate: loose at small K)
    assert torch.allclose(est.ess, torch.exp(2 * e_w - e_w2), rtol=0.25 if K >= 30_000 else 0.6)


def test_standard_error_shrinks_like_one_over_sqrt_k(model_and_exact):
    """SE(K = 10³)/SE(K = 10⁵) in (7, 14), i.e. 1/√K: catches an SE divided by K or not at all."""
    m, _ = model_and_exact
    X = all_states(6)[:8]
    se1 = point_estimates(m, X, 1_000, make_generator(1)).log_ptilde_se
    se2 = point_estimates(m, X, 100_000, make_generator(2)).log_ptilde_se
    ratio = (se1 / se2).median()
    assert 7 < float(ratio) < 14  # sqrt(100) = 10


def test_small_k_is_biased_low_but_a_bound(model_and_exact):
    # E[log p̃*_K] ≤ log p̃* (Jensen): averaged over many independent K = 2 estimates, clearly below.
    """4000 independent K = 2 estimates average clearly below the exact log p̃* (Jensen): catches an
    estimator biased upward (a missing − log K, max_k instead of the mean), which would not sit below."""
    m, t = model_and_exact
    X = all_states(6)[5:6].expand(4000, 6)
    est = point_estimates(m, X, 2, make_generator(5))
    mean = est.log_ptilde.mean()
    se = est.log_ptilde.std() / math.sqrt(4000)
    assert float(mean) < float(t.log_ptilde[5]) - 3 * float(se)


@pytest.mark.parametrize("n_inner", [1, 4])
def test_log_z2_matches_exact_within_se(model_and_exact, n_inner):
    """2·10⁵ outer samples (inner 1 and 4, odd chunks of 30,001) within 4.5 SE of the exact 2 log Z,
    SE < 0.01: catches a wrong term of (3.11) (q(h|x) and q(h'|x) swapped, a missing ½: tenths of a
    nat here), samples lost between chunks, an SE not combined across chunks."""
    m, t = model_and_exact
    z = estimate_log_z2(m, 200_000, make_generator(10 + n_inner), n_inner=n_inner, chunk=30_001)
    assert abs(z.mean - float(t.log_z2)) < Z_TOL * z.se
    assert 0 < z.se < 0.01


def test_z2_itself_is_unbiased_across_repeats(model_and_exact):
    """The mean of 40 Z² estimates (2000 samples each) within 4.5 SE of the exact Z²: catches a Z²
    that is biased (e.g. averaged in log space before exponentiating), which (3.11) is not."""
    m, t = model_and_exact
    vals = torch.tensor([math.exp(estimate_log_z2(m, 2_000, make_generator(s)).mean) for s in range(40)])
    z2 = math.exp(float(t.log_z2))
    assert abs(float(vals.mean()) - z2) < Z_TOL * float(vals.std() / math.sqrt(40))


def test_evaluate_averages_points_and_log_p_star(model_and_exact):
    """600 points drawn from p, K = 2·10⁴: the data-set mean within 0.02 of the exact average over
    the same points, log p*(x) = log p̃*(x) − 2 log Z within 0.05, SEs in quadrature. Catches points
    dropped or repeated across batches and chunks, a wrong sign in (3.3), a wrong SE combination."""
    m, t = model_and_exact
    X = all_states(6)
    probs = torch.exp(t.log_px)
    data = X[torch.multinomial(probs, 600, replacement=True, generator=make_generator(0))]
    res = evaluate(m, data.split(128), 20_000, make_generator(3))
    idx = (data * (2 ** torch.arange(5, -1, -1, dtype=data.dtype))).sum(1).long()
    exact_mean = float(t.log_ptilde[idx].mean())
    # the per-point IS error is tiny here, so the estimate matches the exact average of these points
    assert res.log_ptilde.mean == pytest.approx(exact_mean, abs=0.02)
    assert res.n == 600 and res.log_ptilde.se > 0
    z = estimate_log_z2(m, 100_000, make_generator(4))
    star = log_p_star(res.log_ptilde, z)
    assert star.mean == pytest.approx(float(t.log_pstar[idx].mean()), abs=0.05)
    assert star.se == pytest.approx(math.hypot(res.log_ptilde.se, z.se))


def test_bad_arguments_raise():
    m = tiny_model((3, 2))
    with pytest.raises(ValueError):
        point_estimates(m, torch.zeros(1, 3, dtype=torch.float64), 0, None)
    with pytest.raises(ValueError):
        estimate_log_z2(m, 1, None)
