"""Importance-sampling estimators converge to the exact values within their own standard errors."""

import math

import pytest
import torch

from bihm_app.engine.estimators import estimate_log_z2, evaluate, log_p_star, point_estimates
from bihm_app.engine.exact import all_states, exact_tables
from bihm_app.engine.model import make_generator
from tests.unit.stats import ALPHA, BETA, mean_interval, z_one_sided, z_two_sided
from tests.unit.tiny import tiny_model



@pytest.fixture(scope="module")
def model_and_exact():
    m = tiny_model((6, 4, 3), seed=2)
    return m, exact_tables(m)


@pytest.mark.parametrize("K", [1_000, 30_000])
def test_point_estimates_match_exact_within_se(K):
    """16 visible states at K = 10³ and 3·10⁴, streamed in odd chunks of 997. The estimator is a
    function of three sums over the K draws h ~ q(h|x), of w, w² and w⁴ (w = sqrt(p(x,h)/q(h|x))):
    log p̃* = 2 log mean w, log p = log mean w², the ESS fraction (mean w)²/mean w², the SEs from the
    delta method. Each mean lies, with probability 1 − 10⁻⁴ for all 48 together, in an interval from
    the exact weight distribution (``stats.mean_interval``: Bernstein bounds, no normal approximation,
    so it holds for any seed and for the heavy tails of w⁴ at K = 10³); the ESS and SE of p̃* are then
    fixed by the identities below. Catches a wrong weight (log p − log q instead of ½(…): its limit
    2 log p(x) is asserted to fall outside the interval at ≥ 12 points), samples lost or counted
    twice across chunks, an ESS or SE from the wrong moments or off by a constant (√2, K vs n)."""
    m = tiny_model((6, 4, 3), seed=2, scale=0.5)  # moderate weights: intervals tight enough to see those errors
    t = exact_tables(m)
    X = all_states(6)[::4]  # 16 visible configurations
    est = point_estimates(m, X, K, make_generator(K), k_chunk=997)  # odd chunk: streaming over K
    lp, lq = t.log_pxh[::4].flatten(1), t.log_qhx[::4].flatten(1)
    q, w = lq.exp(), torch.exp(0.5 * (lp - lq))  # the proposal and the weight of each h, (16, 2^7)
    a = ALPHA / (3 * 16)  # three sums per point, 16 points
    (lo1, hi1), (lo2, hi2), (lo4, hi4) = (mean_interval(w**k, q, K, a) for k in (1, 2, 4))
    tiny = 1e-300

    def inside(got, lo, hi):
        return bool(((got >= lo) & (got <= hi)).all())

    assert inside(est.log_ptilde, 2 * torch.log(lo1.clamp(min=tiny)), 2 * torch.log(hi1)), (est.log_ptilde, t.log_ptilde[::4])
    assert inside(est.log_p, torch.log(lo2.clamp(min=tiny)), torch.log(hi2)), (est.log_p, t.log_px[::4])
    se_p = lambda m4, m2: torch.sqrt(torch.clamp(m4 / m2**2 - 1, min=0) / K)  # delta method, monotone in each
    assert inside(est.log_p_se, se_p(lo4, hi2), se_p(hi4, lo2.clamp(min=tiny))), est.log_p_se
    # the ESS fraction and the SE of log p̃* are functions of the same two means (2.5, delta method)
    ess = torch.exp(est.log_ptilde - est.log_p)  # (mean w)² / mean w²
    assert torch.allclose(est.ess, ess, rtol=1e-9)
    assert torch.allclose(est.log_ptilde_se, 2 * torch.sqrt(torch.clamp(1 / ess - 1, min=0) / K), rtol=1e-9)
    # the power: the wrong weight's limit falls outside the interval of log p̃*
    wrong = 2 * t.log_px[::4]
    assert int(((wrong < 2 * torch.log(lo1.clamp(min=tiny))) | (wrong > 2 * torch.log(hi1))).sum()) >= 12


def test_standard_error_shrinks_like_one_over_sqrt_k(model_and_exact):
    """SE(K = 10³)/SE(K = 10⁵) in (7, 14), i.e. 1/√K: catches an SE divided by K or not at all."""
    m, _ = model_and_exact
    X = all_states(6)[:8]
    se1 = point_estimates(m, X, 1_000, make_generator(1)).log_ptilde_se
    se2 = point_estimates(m, X, 100_000, make_generator(2)).log_ptilde_se
    ratio = (se1 / se2).median()
    assert 7 < float(ratio) < 14  # sqrt(100) = 10


def test_small_k_is_biased_low_but_a_bound(model_and_exact):
    """4000 independent K = 2 estimates of log p̃*(x) average to their exact expectation (all pairs
    (h, h') enumerated) within 3.9 of its exact SE (false-alarm rate 10⁻⁴); that expectation lies
    below log p̃* (Jensen). Catches an estimator biased upward (a missing − log K moves it by 2 log 2,
    max_k instead of the mean by more), which the tolerance is checked to see with probability
    1 − 10⁻⁴."""
    m, t = model_and_exact
    xi, n = 5, 4000
    lp, lq = t.log_pxh[xi].flatten(), t.log_qhx[xi].flatten()
    log_w = 0.5 * (lp - lq)
    pair_q = lq.unsqueeze(1) + lq.unsqueeze(0)  # log q(h|x) q(h'|x)
    pair_est = 2 * (torch.logaddexp(log_w.unsqueeze(1), log_w.unsqueeze(0)) - math.log(2))  # the K = 2 estimate
    mean = float((pair_q.exp() * pair_est).sum())
    se = math.sqrt(float((pair_q.exp() * (pair_est - mean) ** 2).sum()) / n)
    assert mean < float(t.log_ptilde[xi])  # Jensen
    assert z_two_sided() * se + z_one_sided(BETA) * se < 2 * math.log(2)  # the power
    est = point_estimates(m, all_states(6)[xi : xi + 1].expand(n, 6), 2, make_generator(5))
    assert abs(float(est.log_ptilde.mean()) - mean) < z_two_sided() * se, (float(est.log_ptilde.mean()), mean, se)


def _z2_term_moments(t, n_inner: int) -> torch.Tensor:
    """log E[T^k], k = 1 … 4, of one term T of (3.11): (x, h) ~ p, T = mean of ``n_inner`` i.i.d.
    R = sqrt(p(x,h') q(h|x) / (p(x,h) q(h'|x))), h' ~ q(h|x). Exact: E[R^k | x, h] by enumeration,
    the mean of n_inner draws through its cumulants (κ_j / n_inner^{j-1}), then averaged over p."""
    lp, lq = t.log_pxh.flatten(1), t.log_qhx.flatten(1)  # (2^D, H)
    log_r = [0.5 * k * (lq - lp) + torch.logsumexp((1 - 0.5 * k) * lq + 0.5 * k * lp, 1, keepdim=True) for k in (1, 2, 3, 4)]
    u2, u3, u4 = (torch.exp(log_r[k - 1] - k * log_r[0]) for k in (2, 3, 4))  # moments of R / E[R | x, h]
    k2, k3, k4 = u2 - 1, u3 - 3 * u2 + 2, u4 - 4 * u3 - 3 * u2**2 + 12 * u2 - 6
    k2, k3, k4 = k2 / n_inner, k3 / n_inner**2, k4 / n_inner**3  # cumulants of the mean of n_inner
    m = [torch.ones_like(k2), k2 + 1, k3 + 3 * k2 + 1, k4 + 4 * k3 + 3 * k2**2 + 6 * k2 + 1]
    return torch.stack([torch.logsumexp((lp + k * log_r[0] + torch.log(m[k - 1])).flatten(), 0) for k in (1, 2, 3, 4)])


@pytest.mark.parametrize("n_inner", [1, 4])
def test_log_z2_matches_exact_within_se(n_inner):
    """2·10⁵ outer samples (inner 1 and 4, odd chunks of 30,001): the estimate within 3.9 exact SEs of
    2 log Z, the reported SE within 3.9 standard deviations of its own (delta method) of the exact SE
    (false-alarm rate 10⁻⁴ each). Both from the terms' exact moments (E T = Z², E T² = Z² + (1 −
    Z²)/n_inner, E T³, E T⁴ by enumeration). Each tolerance is first checked to let the error it is
    for be seen with probability 1 − 10⁻⁴: a wrong term of (3.11) — q(h|x) and q(h'|x) swapped, or the ½ missing (whose
    limit is log 1 = 0), both computed exactly — and an SE not combined across chunks (the last chunk
    alone reports 3.2 × the SE). Also catches samples lost between chunks."""
    m = tiny_model((6, 4, 3), seed=2, scale=0.5)  # moderate weights: the terms' moments settle at 2·10⁵
    t = exact_tables(m)
    n, log_z2 = 200_000, float(t.log_z2)
    log_mom = _z2_term_moments(t, n_inner)
    assert abs(float(log_mom[0]) - log_z2) < 1e-9  # the oracle: E T = Z² …
    z2 = math.exp(log_z2)
    assert abs(math.exp(float(log_mom[1])) - (z2 + (1 - z2) / n_inner)) < 1e-9 * z2  # … and E T² in closed form
    rho = math.exp(float(log_mom[1] - 2 * log_mom[0]))  # E T² / (E T)²
    se = math.sqrt((rho - 1) / n)
    lp, lq = t.log_pxh.flatten(1), t.log_qhx.flatten(1)
    swapped = float(torch.logsumexp((lp.unsqueeze(2) + lq.unsqueeze(1) + 0.5 * (lp.unsqueeze(1) + lq.unsqueeze(1) - lp.unsqueeze(2) - lq.unsqueeze(2))).flatten(), 0))
    tol = z_two_sided() * se
    assert tol + z_one_sided(BETA) * se < min(abs(log_z2), abs(swapped - log_z2)), (tol, log_z2, swapped)  # the power
    # the reported SE: sd of log(ρ̂) by the delta method from E T^k, k ≤ 4
    mu = [math.exp(float(v - k * log_mom[0])) for k, v in zip((1, 2, 3, 4), log_mom)]  # moments of T / E T
    var_log_rho = ((mu[3] - mu[1] ** 2) / mu[1] ** 2 - 4 * (mu[2] - mu[1]) / mu[1] + 4 * (mu[1] - 1)) / n
    sd_log_se = 0.5 * rho / (rho - 1) * math.sqrt(var_log_rho)
    tol_se = z_two_sided() * sd_log_se
    one_chunk = math.sqrt(n / (n - 6 * 30_001))  # the SE of the last chunk alone, relative
    assert tol_se + z_one_sided(BETA) * sd_log_se < math.log(one_chunk)  # the power: seen with prob. 1 − 10⁻⁴
    z = estimate_log_z2(m, n, make_generator(10 + n_inner), n_inner=n_inner, chunk=30_001)
    assert abs(z.mean - log_z2) < tol, (z, log_z2, se)
    assert abs(math.log(z.se / se)) < tol_se, (z.se, se, tol_se)


def test_z2_itself_is_unbiased_across_repeats(model_and_exact):
    """The mean of 40 Z² estimates (2000 samples each) within 3.9 exact SEs of the exact Z² (the
    terms' variance is 1 − Z⁴ with one inner sample; false-alarm rate 10⁻⁴). Catches a Z² that is
    biased, e.g. averaged in log space before exponentiating (limit exp E log T, computed exactly and
    checked to be seen with probability 1 − 10⁻⁴), which (3.11) is not."""
    m, t = model_and_exact
    z2 = math.exp(float(t.log_z2))
    se = math.sqrt((1 - z2**2) / (2_000 * 40))
    lp, lq = t.log_pxh.flatten(1), t.log_qhx.flatten(1)
    log_r = 0.5 * (lp.unsqueeze(1) + lq.unsqueeze(2) - lp.unsqueeze(2) - lq.unsqueeze(1))  # (x, h, h')
    log_space = math.exp(float((torch.exp(lp.unsqueeze(2) + lq.unsqueeze(1)) * log_r).sum()))  # exp E log T
    assert z_two_sided() * se + z_one_sided(BETA) * se < abs(log_space - z2)  # the power
    vals = torch.tensor([math.exp(estimate_log_z2(m, 2_000, make_generator(s)).mean) for s in range(40)])
    assert abs(float(vals.mean()) - z2) < z_two_sided() * se, (float(vals.mean()), z2, se)


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
