"""Semi-supervised BiHM (chapter 4) against exact enumeration, for both placements of the label.

Tiny float64 models (4 visible units, latent 3,2, C = 3) whose every (x, h, y) is enumerated:
the oracle's A, B, Z and conditionals, the estimators Ã (4.4), B̃ (4.5), log p̃*(y|x) and 2 log Z
within their own standard errors, the closed-form gradients (4.9, 4.10) against autograd and
against the exact gradient of the objective, and a short training run.
"""

import itertools
import math

import pytest
import torch

from bihm_app.engine.exact import _log_tables, all_states, exact_tables
from bihm_app.engine.exact_semisup import _log_s_table, _reduce, exact_objective_fn, exact_semisup
from bihm_app.engine.model import BiHM, ModelConfig, make_generator
from bihm_app.engine.semisup import (
    LabelConfig,
    SemiBiHM,
    SemiTrainer,
    estimate_log_z2_labelled,
    label_terms,
    semisup_gradients,
    semisup_point_estimates,
)
from bihm_app.engine.training import TrainConfig
from tests.unit.stats import ALPHA, BETA, mean_interval, t_two_sided, z_one_sided, z_two_sided

Z_TOL = 4.5  # |estimate − exact| / SE; with ~50 comparisons per test a 4.5σ excursion has p ≈ 3e-4
PLACEMENTS = ["top", "bottom", "bottom:h1"]  # "bottom:h1": the label layer reads h_1 only (LabelConfig.inputs)
CASES = [("top", "q"), ("top", "mixed"), ("top", "sum"), ("bottom", "q"), ("bottom:h1", "q")]


def tiny_semi(placement, seed=0, scale=1.0, proposal="q", gamma=0.0, sizes=(4, 3, 2), C=3) -> SemiBiHM:
    """A float64 semi-supervised BiHM with random parameters (Glorot init plus noise); placement
    "bottom:h1" is the label at the bottom reading h_1 only."""
    where, _, inputs = placement.partition(":")
    lc = LabelConfig(C, where, proposal, gamma, inputs=inputs or "x,h1")
    m = SemiBiHM(ModelConfig(sizes[0], sizes[1:]), lc, make_generator(seed))
    m = m.double()
    g = make_generator(seed + 1000)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def informative_semi(placement, seed=0, strength=3.0) -> SemiBiHM:
    """:func:`tiny_semi` plus a deterministic structure that makes p*(y|x) depend on x *by
    construction*: on top, x, h_1, h_2 copy one another in p and q (± strength) and each class has its
    own pattern of h_2 in p(h_2|y) and q(y|h_2); at the bottom, q(y|x,h_1) reads x (± strength), or,
    reading h_1 only, h_1 copies x in p and q and q(y|h_1) reads h_1."""
    m = tiny_semi(placement, seed=seed)

    def copy_pattern(n_lo, n_hi):  # +1 where unit i of the lower layer copies unit i mod n_hi, else −1
        i, j = torch.arange(n_lo).view(-1, 1), torch.arange(n_hi).view(1, -1)
        return torch.where(i % n_hi == j, 1.0, -1.0).to(m.dtype)

    with torch.no_grad():
        if m.top:
            for l in range(m.n_layers):
                P = copy_pattern(*m.p_weights[l].shape)
                m.p_weights[l].add_(strength * P)
                m.q_weights[l].add_(strength * P.t())
            classes = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]], dtype=m.dtype)  # (n_L, C): h_2's pattern per class
            m.y_p_weights.add_(strength * classes)
            m.y_q_weights.add_(strength * classes.t())
        elif m.reads_x:
            m.y_q_weights_x.add_(strength * copy_pattern(m.n_classes, m.sizes[0]))
        else:  # q(y | h_1) only: h_1 copies x in p and q, and q(y | h_1) reads h_1
            P = copy_pattern(*m.p_weights[0].shape)
            m.p_weights[0].add_(strength * P)
            m.q_weights[0].add_(strength * P.t())
            m.y_q_weights.add_(strength * copy_pattern(m.n_classes, m.sizes[1]))
    return m


# ---------------------------------------------------------------------------------------------
# the oracle itself
# ---------------------------------------------------------------------------------------------
def _brute_force_log_s(m: SemiBiHM, x, hs, y) -> float:
    """log √(p(x,h,y) q(h,y|x)) for one configuration, from the conditionals one by one."""

    def bern(v, a):
        return float((v * a - torch.nn.functional.softplus(a)).sum())

    L = m.n_layers
    layers = [x, *hs]
    lp = sum(bern(layers[l - 1], m.p_logits(l, layers[l])) for l in range(1, L + 1))
    lq = sum(bern(layers[l], m.q_logits(l, layers[l - 1])) for l in range(1, L + 1))
    if m.top:
        lp += float(torch.log_softmax(m.y_prior, 0)[y]) + bern(hs[-1], m.p_prior + m.y_p_weights[:, y])
        lqy = float(torch.log_softmax(m.y_q_weights @ hs[-1] + m.y_q_biases, 0)[y])
        return 0.5 * (lp + lq + lqy)
    lp += bern(hs[-1], m.p_prior)
    zx = m.y_q_weights_x @ x if m.reads_x else 0.0
    lqy = float(torch.log_softmax(zx + m.y_q_weights @ hs[0] + m.y_q_biases, 0)[y])
    return lqy + 0.5 * (lp + lq)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_oracle_matches_a_brute_force_sum_and_normalises(placement):
    """A(x), B(x, y) from the broadcast tables equal explicit loops over (h, y); Σ_y p*(y|x) = 1
    and Σ_{x,y} p*(x,y) = 1. Catches a misplaced axis in the oracle, an unnormalised p(h_L|y),
    p(y) or q(y|·), and a wrong definition of Z. On a model where p*(y|x) varies with x by
    construction (``informative_semi``, asserted), so that a misplaced x or y axis shows."""
    with torch.no_grad():
        m = informative_semi(placement, seed=1)
        e = exact_semisup(m)
        states = [all_states(n) for n in m.sizes]
        for xi in (0, 6, 13):
            x = states[0][xi]
            vals = torch.tensor(
                [[_brute_force_log_s(m, x, [h1, h2], y) for h1, h2 in itertools.product(states[1], states[2])] for y in range(3)],
                dtype=torch.float64,
            )  # (C, configurations)
            assert torch.allclose(torch.logsumexp(vals, 1), e.log_b[xi], atol=1e-12)
            assert abs(float(torch.logsumexp(vals.flatten(), 0)) - float(e.log_a[xi])) < 1e-12
    assert torch.allclose(e.log_py_given_x.exp().sum(1), torch.ones(16, dtype=torch.float64), atol=1e-12)
    assert abs(float(torch.logsumexp(e.log_pstar_xy.flatten(), 0))) < 1e-12
    assert abs(float(torch.logsumexp(e.log_pstar_x, 0))) < 1e-12
    # the label is informative: p*(y|x) is not the same for every x (through h_1 only: less so)
    assert float(e.log_py_given_x.exp().std(0).max()) > (0.01 if placement == "bottom:h1" else 0.02)


@pytest.mark.parametrize("placement", ["bottom", "bottom:h1"])
def test_label_at_the_bottom_leaves_the_x_model_unsupervised(placement):
    """Sec. 4.6: y sums out, so A(x)² is the unsupervised BiHM's p̃*(x) and Z its Z. Catches a
    label layer that leaks into the marginal of x (e.g. q(y|·) inside the square root)."""
    m = tiny_semi(placement, seed=2)
    base = BiHM(ModelConfig(4, (3, 2))).double()
    base.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("y_")})
    t, e = exact_tables(base), exact_semisup(m)
    assert torch.allclose(2 * e.log_a, t.log_ptilde, atol=1e-12)
    assert abs(float(e.log_z2 - t.log_z2)) < 1e-12


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
def _log_qy_table(m: SemiBiHM) -> torch.Tensor:
    """log q(y | ·) over (x, h_1, h_2, y), broadcastable to the oracle's log s table."""
    states = [all_states(n) for n in m.sizes]
    if m.top:
        return torch.log_softmax(states[2] @ m.y_q_weights.t() + m.y_q_biases, -1).view(1, 1, -1, m.n_classes)
    zx = states[0] @ m.y_q_weights_x.t() if m.reads_x else states[0].new_zeros(len(states[0]), m.n_classes)
    z = zx.unsqueeze(1) + (states[1] @ m.y_q_weights.t() + m.y_q_biases).unsqueeze(0)
    return torch.log_softmax(z, -1).unsqueeze(2)  # (2^D, 2^{n_1}, 1, C)


@pytest.mark.parametrize("placement,proposal", CASES)
def test_estimators_converge_to_exact_within_their_se(placement, proposal):
    """Ã (4.4), B̃ (4.5) and log p̃*(y|x) = log B̃ − log Ã for all 16 x and 3 classes, streamed over
    K = 20,000 in odd chunks, lie within 4.9 of their own delta-method SEs of the enumerated values
    (Bonferroni over the 144 comparisons: false-alarm rate 10⁻⁴ under the normal approximation).
    B̃'s weights s(x,h,y)/q(h|x), h ~ q(h|x), do not depend on the proposal: log B̃ and its reported
    SE also lie in the intervals their draws hold with probability 1 − 10⁻⁴ whatever the tails
    (``stats.mean_interval``), which bounds the SEs from above (the comparison is not vacuous), and
    the limit of B̃ with q(y|·)'s factor left out of s is asserted to fall outside at most (x, y).
    Catches a wrong importance weight (a missing q(y|h) factor, the ½ of (4.11), the δ_y term),
    a chunking bug, and SEs that are too small."""
    m = tiny_semi(placement, seed=3, proposal=proposal)
    e = exact_semisup(m)
    X = all_states(4)
    y = torch.arange(16) % 3
    K = 20_000
    est = semisup_point_estimates(m, X, K, make_generator(7), proposal, y=y, k_chunk=3001)
    z_tol = z_two_sided(m=3 * 48)
    for got, se, want in (
        (est.log_a, est.log_a_se, e.log_a),
        (est.log_b, est.log_b_se, e.log_b),
        (est.log_py, est.log_py_se, e.log_py_given_x),
    ):
        z = (got - want) / se
        assert float(z.abs().max()) < z_tol, z
    # B̃ against its exact weight distribution: per (x, y) the weights over h with probabilities q(h|x)
    with torch.no_grad():
        log_s = _log_s_table(m).flatten(1, 2)  # (16, H, C)
        log_q = _log_tables(m)[1].flatten(1)  # (16, H)
        log_qy = _log_qy_table(m).expand(16, 2 ** m.sizes[1], 2 ** m.sizes[2], 3).flatten(1, 2)  # (16, H, C)
    w = torch.exp(log_s - log_q.unsqueeze(-1)).permute(0, 2, 1).reshape(48, -1)  # ((x, y), h)
    q = log_q.exp().unsqueeze(1).expand(-1, 3, -1).reshape(48, -1)
    a = ALPHA / (2 * 48)
    (lo1, hi1), (lo2, hi2) = mean_interval(w, q, K, a), mean_interval(w**2, q, K, a)
    log_b, se_b = est.log_b.flatten(), est.log_b_se.flatten()
    assert bool(((log_b >= torch.log(lo1)) & (log_b <= torch.log(hi1))).all()), (log_b, e.log_b)
    se_hi = torch.sqrt(torch.clamp(hi2 / lo1**2 - 1, min=0) / K)
    assert bool((se_b <= se_hi).all()), (se_b, se_hi)
    # the power: without q(y|·)'s factor in s (½ log q on top, log q at the bottom) B̃ tends elsewhere
    drop = (0.5 if m.top else 1.0) * log_qy
    wrong = torch.logsumexp(log_s - drop, 1).flatten()  # (48,)
    assert int(((wrong < torch.log(lo1)) | (wrong > torch.log(hi1))).sum()) >= 24
    if placement != "top" or proposal == "sum":  # y summed exactly: p̃*(y|x) is normalised
        assert torch.allclose(est.log_py.exp().sum(1), torch.ones(16, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("placement,proposal", CASES)
def test_reported_se_is_the_real_spread(placement, proposal):
    """Across 400 independent K = 500 estimates of log p̃*(y|x) at three x, the standard deviation
    matches the median reported SE within 25 %. Catches a delta-method SE that forgets the
    covariance of the samples Ã and B̃ share (too large by 1.1–6× on this model)."""
    m = tiny_semi(placement, seed=4, scale=0.5, proposal=proposal)
    y = torch.full((400,), 1)
    for xi in (2, 5, 11):
        X = all_states(4)[xi : xi + 1].expand(400, 4)
        est = semisup_point_estimates(m, X, 500, make_generator(8 + xi), proposal, y=y)
        ratio = est.log_py[:, 1].std() / est.log_py_se[:, 1].median()
        assert 0.8 < float(ratio) < 1.25, (xi, float(ratio))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_log_z2_of_the_labelled_model_matches_exact(placement):
    """2 log Z of the labelled model (3.11 with y drawn from p(y) and summed in the inner
    estimate) within 4.5 SE of log Σ_x A(x)². Catches a wrong p(y)/p(h_L|y) in the ancestral
    sampler or a missing q(y|h) in the ratio."""
    m = tiny_semi(placement, seed=5, scale=0.7)
    e = exact_semisup(m)
    z = estimate_log_z2_labelled(m, 200_000, make_generator(9), n_inner=2, chunk=30_001)
    assert abs(z.mean - float(e.log_z2)) < Z_TOL * z.se
    assert 0 < z.se < 0.02


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------
def _reference_surrogate(m, res, y, labelled, gamma, proposal, baseline):
    """Autograd reference: Σ sg(weight) × log-factor, with the weights of (4.9)/(4.10) computed
    here from scratch on the samples the engine drew."""
    hs = [h.detach() for h in res.samples]
    t = label_terms(m, hs)
    B, K, C = t.log_s.shape
    ls, lq = t.log_s.detach(), t.log_q.detach()
    idx = y.view(B, 1, 1).expand(B, K, 1)
    wb = torch.softmax(ls.gather(-1, idx).squeeze(-1) - lq, 1)  # ω̃_B (4.10)
    coef = torch.zeros(B, K, C, dtype=ls.dtype)  # coefficient of ∇ log s(x, h_k, y)
    for b in range(B):
        ca = -gamma if labelled[b] else 2.0
        if labelled[b]:
            coef[b, :, y[b]] += wb[b]
        if not m.top or proposal == "sum":  # y summed: ω̃ over (k, y) ∝ s(x,h_k,y)/q(h_k|x)
            coef[b] += ca * torch.softmax((ls[b] - lq[b].unsqueeze(-1)).flatten(), 0).view(K, C)
        else:
            ya = res.labels_a[b]
            lqy = t.log_qy.detach()[b].gather(-1, ya.unsqueeze(-1)).squeeze(-1)
            if proposal == "mixed" and labelled[b]:
                log_r = torch.log(0.5 * lqy.exp() + 0.5 * (ya == y[b]).double())
            else:
                log_r = lqy
            wa = torch.softmax(ls[b].gather(-1, ya.unsqueeze(-1)).squeeze(-1) - lq[b] - log_r, 0)
            coef[b, torch.arange(K), ya] += ca * wa
    c = coef.sum(-1)
    v = 0.5 * c - 0.5 * c.mean(1, keepdim=True) if baseline else 0.5 * c
    # log s = (everything but log q(h|x)) + ½ log q(h|x): the q(h|x)-part gets the baseline
    surrogate = (coef * (t.log_s - 0.5 * t.log_q.unsqueeze(-1))).sum() + (v * t.log_q).sum()
    m.zero_grad()
    surrogate.backward()
    return {n: p.grad.clone() for n, p in m.named_parameters()}


@pytest.mark.parametrize("placement,proposal", CASES)
@pytest.mark.parametrize("gamma,baseline", [(0.0, True), (0.7, False), (-1.0, True)])
def test_closed_form_gradients_equal_autograd_of_the_surrogate(placement, proposal, gamma, baseline):
    """The per-layer closed forms equal autograd of Σ sg(ω̃) ∇ log s on the same samples, to
    1e-10, for a batch mixing labelled and unlabelled points. Catches a wrong residual, a missing
    ½, a transposed weight, the shared bias of p(h_L|y), the per-point V_x x shortcut and the
    baseline."""
    m = tiny_semi(placement, seed=6, proposal=proposal, gamma=gamma)
    X = all_states(4)[torch.tensor([1, 4, 7, 9, 12, 15])]
    y = torch.tensor([0, 2, 1, 1, 0, 2])
    labelled = torch.tensor([True, False, True, True, False, True])
    res = semisup_gradients(m, X, y, labelled, 7, make_generator(11), gamma, proposal, baseline)
    ref = _reference_surrogate(m, res, y, labelled, gamma, proposal, baseline)
    assert set(res.grads) == set(ref)
    for name in ref:
        assert torch.allclose(res.grads[name], ref[name], rtol=1e-10, atol=1e-12), name


@pytest.mark.parametrize("placement", ["bottom", "bottom:h1"])
def test_unlabelled_points_do_not_move_the_bottom_label_layer(placement):
    """Sec. 4.6: the gradient of p*(x) w.r.t. q(y|x,h_1) is zero. Catches an A-estimate that
    samples y (it would give a noisy, non-zero update)."""
    m = tiny_semi(placement, seed=7)
    X = all_states(4)[:8]
    res = semisup_gradients(m, X, torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.bool), 9, make_generator(1))
    assert {n for n in res.grads if n.startswith("y_")} == {n for n, _ in m.named_parameters() if n.startswith("y_")}
    for name in ("y_q_weights", "y_q_weights_x", "y_q_biases") if m.reads_x else ("y_q_weights", "y_q_biases"):
        assert float(res.grads[name].abs().max()) < 1e-12, name
    assert float(res.grads["q_weights.0"].abs().max()) > 1e-3


def _grad_vector(m, grads):
    return torch.cat([grads[n].flatten() for n, _ in m.named_parameters()])


def _exact_gradient(m, objective) -> torch.Tensor:
    m.zero_grad()
    objective.backward()
    return torch.cat([p.grad.flatten() for _, p in m.named_parameters()])


@pytest.mark.parametrize("placement,proposal", CASES)
def test_large_k_gradients_match_the_exact_gradient_of_the_objective(placement, proposal):
    """32 independent estimates at K = 10⁴ of the ascent direction of Σ_b objective_b (labelled:
    log B − γ log A, unlabelled: 2 log A): their mean agrees with autograd of the enumerated
    objective within the Student-t(31) threshold for all components together (Bonferroni, false-alarm
    rate 10⁻⁴; the SE plus 10⁻⁴ of the largest component for the O(1/K) self-normalisation bias).
    Catches a weight of (4.9)/(4.10) that is consistent for the wrong target: ω̃_A used for B, whose
    limit (the gradient of log A in place of log B, exact) is asserted to fail the same check."""
    gamma, R = 0.5, 32
    m = tiny_semi(placement, seed=8, scale=0.6, proposal=proposal, gamma=gamma)
    xi = torch.tensor([2, 9, 14])
    X = all_states(4)[xi]
    y = torch.tensor([1, 0, 2])
    labelled = torch.tensor([True, False, True])
    est = torch.stack(
        [
            _grad_vector(m, semisup_gradients(m, X, y, labelled, 10_000, make_generator(100 + r), gamma, proposal).grads)
            for r in range(R)
        ]
    )
    mean, se = est.mean(0), est.std(0) / math.sqrt(R)
    exact = _exact_gradient(m, exact_objective_fn(m, xi, y, labelled, gamma))
    log_a, _ = _reduce(_log_s_table(m))
    wrong = _exact_gradient(m, torch.where(labelled, (1 - gamma) * log_a[xi], 2 * log_a[xi]).sum())  # B ← A
    scale = se + 1e-4 * exact.abs().max()
    tol = t_two_sided(R - 1, m=exact.numel())
    assert float(((mean - exact) / scale).abs().max()) < tol
    assert float(((wrong - exact) / scale).abs().max()) > tol + z_one_sided(BETA)  # the power
    assert float(exact.abs().max()) > 0.1


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_training_on_a_tiny_labelled_set_lowers_the_exact_classification_loss(placement):
    """Three prototype patterns with 5 % bit noise, the class is the prototype; 30 of 600 points
    labelled, every minibatch 10 labelled (cycled) + 40 unlabelled points, as the runner does. The
    label parameters start near zero, so p*(y|x) ≈ 1/3 for every x (the exact −log p*(y|x) ≈ log 3
    and the error ≈ 2/3 by construction, not by the luck of the init); after 220 updates both drop,
    the error of a label-at-the-bottom model to within 0.06 of the Bayes error of the prototypes
    (6.7 %; 5 SDs of a 600-point error above it). Catches a sign error, an objective that
    ignores the labels, or a trainer that drops the label parameters. (Over 40 seeds the loss
    dropped by ≥ 0.43 and the error by ≥ 0.25 on top, by ≥ 0.81 and ≥ 0.28 at the bottom.)"""
    m = tiny_semi(placement, seed=10, scale=0.3, sizes=(4, 3, 3))
    g = make_generator(77)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("y_"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    m = m.float()
    protos = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=torch.float32)
    g = make_generator(1)
    y = torch.randint(0, 3, (600,), generator=g)
    x = (protos[y] + (torch.rand(600, 4, generator=g) < 0.05).float()) % 2
    xi = (x * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()

    def exact_loss():
        e = exact_semisup(m.double())
        m.float()
        lpy = e.log_py_given_x[xi, y]
        err = (e.log_py_given_x[xi].argmax(1) != y).float().mean()
        return float(-lpy.mean()), float(err)

    before = exact_loss()
    assert before[0] > math.log(3) - 0.1, before  # it does not know the labels at the start
    tr = SemiTrainer(m, TrainConfig(K=10, batch_size=50, lr=0.1, l1=0.0), make_generator(10))
    epochs = 20
    labelled_stream = torch.cat([torch.randperm(30, generator=g) for _ in range(4 * epochs)])
    lab = torch.arange(50) < 10
    for epoch in range(epochs):
        unl = 30 + torch.randperm(570, generator=g)
        for b in range(11):
            idx = torch.cat([labelled_stream[(epoch * 11 + b) * 10 :][:10], unl[b * 40 : (b + 1) * 40]])
            assert tr.step(x[idx], y[idx], lab).finite
    after = exact_loss()
    assert after[0] < before[0] - 0.3, (before, after)
    assert after[1] < before[1] - 0.2, (before, after)
    if placement != "top":  # (over 16 seeds at most 0.083 reading x and h_1, 0.100 reading h_1 only)
        log_lik = torch.where(protos.unsqueeze(0) == all_states(4, torch.float32).unsqueeze(1), math.log(0.95), math.log(0.05)).sum(-1)
        bayes = 1 - float(torch.softmax(log_lik, 1).max(1).values.mul(torch.logsumexp(log_lik, 1).exp() / 3).sum())
        assert after[1] < bayes + 0.06, (before, after, bayes)


@pytest.mark.parametrize("placement,lam_x", [("top", None), ("bottom", None), ("bottom", 2.1), ("bottom:h1", None)])
def test_label_l2_adds_exactly_its_weight_decay_to_the_label_layer(placement, lam_x):
    """The trainer's descent direction with ``LabelConfig.l2 = λ₂`` is the one without it plus
    (n_lab/B)·λ₂·V on the q(y|·) weights V and unchanged elsewhere (same samples: same seeds).
    With the closed-form gradients already checked against autograd and the exact gradient above,
    this pins the penalty −(n_lab/B)(λ₂/2)‖V‖² of the update, with V_x's own λ when ``l2_x`` is
    set. Catches a wrong sign (growing the
    weights), a penalty on the wrong parameters (the x-model or the biases), a scale per batch
    instead of per labelled point, l2_x applied to V_h or ignored, or a penalty that is silently
    dropped."""
    B, n_lab, lam = 12, 5, 0.37
    g = make_generator(5)
    x = (torch.rand(B, 4, generator=g, dtype=torch.float64) < 0.5).double()
    y = torch.randint(0, 3, (B,), generator=g)
    labelled = torch.arange(B) < n_lab

    def descent(l2, l2_x=None):
        m = tiny_semi(placement, seed=3, gamma=0.5)
        m.labels = LabelConfig(3, m.labels.placement, "q", 0.5, l2, l2_x, m.labels.inputs)
        tr = SemiTrainer(m, TrainConfig(K=7, batch_size=B, lr=1e-3, l1=1e-3), make_generator(11))
        seen = {}

        def record(*a, **k):
            seen.update({n: p.grad.clone() for n, p in tr.params.items()})

        tr.optimizer.step = record
        assert tr.step(x, y, labelled).finite
        return m, seen

    m, plain = descent(0.0)
    _, decayed = descent(lam, lam_x)
    lams = {"y_q_weights": lam, "y_q_weights_x": lam if lam_x is None else lam_x}
    shrunk = {"y_q_weights", "y_q_weights_x"} & set(plain)
    assert shrunk == ({"y_q_weights", "y_q_weights_x"} if placement == "bottom" else {"y_q_weights"})
    for name, p in m.named_parameters():
        want = plain[name] + (n_lab / B) * lams.get(name, 0.0) * p.detach() if name in shrunk else plain[name]
        torch.testing.assert_close(decayed[name], want, rtol=0, atol=1e-12, msg=name)
    assert all(float(plain[n].abs().max()) > 0 for n in shrunk)


def test_label_config_validation_and_round_trip():
    """Impossible label configurations are refused with a message naming the option; a stored
    label config from before ``l2`` existed loads with no penalty (old checkpoints train alike)."""
    for kw, msg in (({"n_classes": 1}, "classes"), ({"placement": "side"}, "placement"),
                    ({"proposal": "p"}, "proposal"), ({"gamma": 1.5}, "gamma"), ({"l2": -1e-3}, "l2"),
                    ({"l2": float("nan")}, "l2"), ({"l2": float("inf")}, "l2"),
                    ({"placement": "bottom", "inputs": "x"}, "input"), ({"placement": "top", "inputs": "h1"}, "bottom"),
                    ({"placement": "bottom", "l2_x": -1.0}, "l2 x"), ({"placement": "top", "l2_x": 0.1}, "reads x"),
                    ({"placement": "bottom", "inputs": "h1", "l2_x": 0.1}, "reads x")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            LabelConfig(**kw)
    lc = LabelConfig(5, "bottom", "mixed", -0.25, 0.03, 0.3)
    assert LabelConfig.from_dict(lc.to_dict() | {"unknown": 1}) == lc
    old = {"n_classes": 5, "placement": "bottom", "proposal": "q", "gamma": 0.0}  # a 0.x checkpoint
    assert (LabelConfig.from_dict(old).l2, LabelConfig.from_dict(old).l2_x, LabelConfig.from_dict(old).inputs) == (0.0, None, "x,h1")
    assert LabelConfig.from_dict(LabelConfig(5, "bottom", inputs="h1").to_dict()).inputs == "h1"
