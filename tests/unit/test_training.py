"""Algorithm 1's closed-form gradients: equal to autograd of the surrogate, consistent for the exact
gradient of log p̃*(x) (and of log p(x) for RWS), and they make a toy model learn."""

import math

import pytest
import torch

from bihm_app.engine.exact import all_states, exact_log_ptilde_fn, exact_tables, state_index
from bihm_app.engine.model import make_generator
from bihm_app.engine.training import Trainer, TrainConfig, closed_form_gradients
from tests.unit.stats import BETA, t_two_sided, z_one_sided
from tests.unit.tiny import tiny_model


def autograd_surrogate_grads(model, x, K, seed, method, baseline):
    """Autograd of Σ_b Σ_k stopgrad(ω̃) log p + stopgrad(v) log q with the same samples (the reference)."""
    hs, _, _ = model.sample_q(x, K, make_generator(seed))
    hs = [h.detach() for h in hs]
    log_p, log_q = model.log_p(hs), model.log_q(hs)
    log_w = 0.5 * (log_p - log_q) if method == "bihm" else log_p - log_q
    omega = torch.softmax(log_w, 1).detach()
    v = omega - 1.0 / K if baseline else omega
    surrogate = (omega * log_p).sum() + (v * log_q).sum()
    model.zero_grad()
    surrogate.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["bihm", "rws"])
@pytest.mark.parametrize("baseline", [True, False])
@pytest.mark.parametrize("sizes", [(6, 4, 3), (5, 3), (7, 4, 3, 2)])
def test_closed_form_equals_autograd_of_surrogate(method, baseline, sizes):
    """Deterministic, same samples, rtol 1e-10: every closed-form gradient equals autograd of the
    surrogate Σ stopgrad(ω̃) log p + stopgrad(v) log q. Catches a wrong residual, a transposed or
    misplaced weight gradient, a wrong baseline sign, bias sums over the wrong axis."""
    m = tiny_model(sizes, seed=4)
    x = all_states(sizes[0])[torch.arange(0, 2 ** sizes[0], 3)]
    K = 7
    _, g = closed_form_gradients(m, x, K, make_generator(11), method, baseline)
    ref = autograd_surrogate_grads(m, x, K, 11, method, baseline)
    assert set(g) == set(ref)
    for name in ref:
        assert torch.allclose(g[name], ref[name], rtol=1e-10, atol=1e-12), name


def test_objective_is_the_importance_estimate():
    """K = 5·10⁴: the returned objective within 0.05 of the exact log p̃*(x) of 10 points. Catches a
    wrong ½ or log K in (3.5) (tenths of a nat or more here)."""
    m = tiny_model((6, 4, 3), seed=5)
    x = all_states(6)[:10]
    obj, _ = closed_form_gradients(m, x, 50_000, make_generator(0), "bihm", True)
    t = exact_tables(m)
    assert torch.allclose(obj, t.log_ptilde[:10], atol=0.05)


def _grad_estimates(m, x, K, repeats, method):
    est = []
    for r in range(repeats):
        _, g = closed_form_gradients(m, x, K, make_generator(100 + r), method, True)
        est.append(torch.cat([g[n].flatten() for n, _ in m.named_parameters()]))
    est = torch.stack(est)
    return est.mean(0), est.std(0) / math.sqrt(repeats)


def test_large_k_gradient_matches_exact_gradient_of_log_ptilde():
    """32 repeats at K = 10⁴: every component within the Student-t(31) threshold of all components
    together (Bonferroni, false-alarm rate 10⁻⁴) of the exact ∇ log p̃*(x) by enumeration, the SE
    plus 10⁻⁴ of the largest component for the O(1/K) self-normalisation bias. Catches the gradient
    of the wrong objective: RWS weights, whose p-part tends to ∇_p log p(x) (exact; asserted to fail
    the same check), or a missing ½."""
    m = tiny_model((6, 4, 3), seed=6, scale=0.7)
    xi = torch.tensor([3, 40, 61])
    x = all_states(6)[xi]
    R = 32
    mean, se = _grad_estimates(m, x, 10_000, R, "bihm")
    m.zero_grad()
    exact_log_ptilde_fn(m, xi).sum().backward()
    exact = torch.cat([p.grad.flatten() for _, p in m.named_parameters()])
    m.zero_grad()
    torch.logsumexp(_log_pxh_differentiable(m)[xi].flatten(1), 1).sum().backward()
    rws_limit = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for _, p in m.named_parameters()])
    scale = se + 1e-4 * exact.abs().max()  # plus the O(1/K) self-normalisation bias
    tol = t_two_sided(R - 1, m=exact.numel())
    assert float(((mean - exact) / scale).abs().max()) < tol
    is_p = torch.cat([torch.full((p.numel(),), n.startswith("p_")) for n, p in m.named_parameters()])
    assert float(((rws_limit - exact) / scale)[is_p].abs().max()) > tol + z_one_sided(BETA)  # the power
    # and the estimate is not trivially close: the gradient is far from zero
    assert float(exact.abs().max()) > 0.1


def test_rws_p_gradient_matches_exact_gradient_of_log_p():
    """32 repeats at K = 10⁴: the p-part of the RWS gradient within the Student-t(31) threshold
    (Bonferroni over the p-components, false-alarm rate 10⁻⁴) of the exact ∇ log p(x): catches RWS
    weights computed with BiHM's ½ (or the other way round)."""
    m = tiny_model((6, 4, 3), seed=7, scale=0.7)
    xi = torch.tensor([5, 33])
    x = all_states(6)[xi]
    R = 32
    mean, se = _grad_estimates(m, x, 10_000, R, "rws")
    m.zero_grad()
    t_logp = torch.logsumexp(_log_pxh_differentiable(m)[xi].flatten(1), 1)
    t_logp.sum().backward()
    offs = torch.cumsum(torch.tensor([0] + [p.numel() for _, p in m.named_parameters()]), 0)
    n_p = sum(p.numel() for n, p in m.named_parameters() if n.startswith("p_"))
    tol = t_two_sided(R - 1, m=n_p)
    for i, (n, p) in enumerate(m.named_parameters()):
        if not n.startswith("p_"):
            continue
        sl = slice(int(offs[i]), int(offs[i + 1]))
        z = (mean[sl] - p.grad.flatten()) / (se[sl] + 1e-4)
        assert float(z.abs().max()) < tol, n


def _log_pxh_differentiable(m):
    from bihm_app.engine.exact import _log_tables

    return _log_tables(m)[0]


def test_a_few_hundred_updates_raise_exact_log_ptilde():
    """8 epochs on a toy set raise the exact mean log p̃* by > 1 nat and log p* by > 0.5 and reach
    within 2 nats of the data's entropy: catches an ascent in the wrong direction or a gradient
    scaled so that Adam does not learn."""
    torch.manual_seed(0)
    m = tiny_model((6, 4, 3), seed=8, scale=0.3).float()
    # toy data: two prototypes with 5 % bit noise
    protos = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 1]], dtype=torch.float32)
    g = make_generator(1)
    idx = torch.randint(0, 2, (2000,), generator=g)
    flips = (torch.rand(2000, 6, generator=g) < 0.05).float()
    data = (protos[idx] + flips) % 2

    def exact_mean():
        t = exact_tables(m.double())
        m.float()
        return float(t.log_ptilde[state_index(data)].mean()), float(t.log_pstar[state_index(data)].mean())

    before = exact_mean()
    tr = Trainer(m, TrainConfig(K=10, batch_size=50, lr=3e-2, l1=0.0), make_generator(2))
    for epoch in range(8):
        for xb in data.split(50):
            assert tr.step(xb).finite
    after = exact_mean()
    assert after[0] > before[0] + 1.0, (before, after)
    assert after[1] > before[1] + 0.5, (before, after)
    # entropy of the toy data is ≈ log 2 + 6·H(0.05) ≈ 2.04 nats: the model gets within reach of it
    assert after[0] > -4.0


def test_resume_from_state_is_bit_identical():
    def fresh():
        m = tiny_model((6, 4, 3), seed=9).float()
        return Trainer(m, TrainConfig(K=5, batch_size=20), make_generator(3))

    data = (torch.rand(200, 6, generator=make_generator(4)) < 0.3).float()
    a = fresh()
    for xb in data.split(20)[:5]:
        a.step(xb)
    saved = {k: v.clone() for k, v in a.state().items()}
    for xb in data.split(20)[5:]:
        a.step(xb)
    b = fresh()
    b.load_state(saved)
    for xb in data.split(20)[5:]:
        b.step(xb)
    for (n, pa), pb in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.equal(pa, pb), n


def test_a_step_marks_every_parameter_changed_in_place():
    """Each update bumps every parameter's version counter, as any in-place torch op does. torch's
    fused Adam kernel does not, and caches keyed on versions (the estimators' packed int8 weights)
    then served the weights of before the step. Catches an update that changes the parameters behind
    autograd's back, on every CPU (the int8 path itself is tested where it runs)."""
    m = tiny_model((6, 4, 3), seed=9).float()
    trainer = Trainer(m, TrainConfig(K=5, batch_size=20), make_generator(3))
    x = (torch.rand(20, 6, generator=make_generator(4)) < 0.3).float()
    before = {n: (p._version, p.detach().clone()) for n, p in m.named_parameters()}
    assert trainer.step(x).finite
    for n, p in m.named_parameters():
        assert not torch.equal(p.detach(), before[n][1]), n  # the step changed it ...
        assert p._version > before[n][0], n  # ... and said so


def test_l1_penalty_shrinks_weights():
    data = (torch.rand(400, 6, generator=make_generator(5)) < 0.5).float()  # nothing to learn
    norms = {}
    for l1 in (0.0, 2.5):  # per minibatch of 50: 0.05 per data point
        m = tiny_model((6, 4, 3), seed=10).float()
        tr = Trainer(m, TrainConfig(K=5, batch_size=50, lr=1e-2, l1=l1), make_generator(6))
        for xb in data.split(50):
            tr.step(xb)
        norms[l1] = sum(float(w.detach().abs().sum()) for w in m.weights())
    assert norms[2.5] < norms[0.0] - 1.0


def test_l1_batch_scaling_is_lambda_over_b_per_point():
    """The default ("batch", the authors' scaling) adds λ once per minibatch: identical updates to
    λ/B per data point. Catches the 0.1 defect (λ per point, 100× the authors' at B = 100) and any
    other factor (B·K, world size) in the scaling."""
    data = (torch.rand(200, 6, generator=make_generator(5)) < 0.5).float()
    params = {}
    for cfg in (TrainConfig(K=5, batch_size=50, lr=1e-2, l1=0.5), TrainConfig(K=5, batch_size=50, lr=1e-2, l1=0.01, l1_per="point")):
        m = tiny_model((6, 4, 3), seed=10).float()
        tr = Trainer(m, cfg, make_generator(6))
        for xb in data.split(50):
            tr.step(xb)
        params[cfg.l1_per] = [p.detach().clone() for p in m.parameters()]
    for a, b in zip(params["batch"], params["point"]):
        assert torch.allclose(a, b, atol=1e-6)
    # and it is not the per-point penalty of the same λ
    m = tiny_model((6, 4, 3), seed=10).float()
    tr = Trainer(m, TrainConfig(K=5, batch_size=50, lr=1e-2, l1=0.5, l1_per="point"), make_generator(6))
    for xb in data.split(50):
        tr.step(xb)
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(params["batch"], m.parameters()))


def test_l1_meaning_of_old_configs_is_kept():
    """A config written before l1_per existed (bihm-app 0.1) meant λ per data point."""
    old = TrainConfig().to_dict()
    del old["l1_per"]
    assert TrainConfig.from_dict(old).l1_per == "point"
    assert TrainConfig.from_dict(TrainConfig().to_dict()).l1_per == "batch"
    assert TrainConfig().l1_per == "batch"
    for bad in (float("nan"), float("inf"), -1e-3):
        with pytest.raises(ValueError, match="L1"):
            TrainConfig(l1=bad)
    with pytest.raises(ValueError, match="l1_per"):
        TrainConfig(l1_per="sample")


def test_train_config_validation():
    with pytest.raises(ValueError, match="K must be"):
        TrainConfig(K=0)
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="vae")
    assert TrainConfig.from_dict(TrainConfig(K=3).to_dict()).K == 3
