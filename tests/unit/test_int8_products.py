"""Exact int8 products (engine/passes.py): binary samples times fp32 weights split into three int8
terms must be as accurate as fp32 products, and the estimators built on them must not change."""

import pytest
import torch

from bihm_app.engine import passes
from bihm_app.engine.estimators import point_estimates
from bihm_app.engine.exact import all_states, exact_tables
from bihm_app.engine.model import PAPER12, BiHM, ModelConfig, make_generator
from bihm_app.engine.passes import (
    INT8_STEP,
    Products,
    Workspace,
    int8_logits,
    log_weights_pass,
    pack_int8,
    split_int8,
    want_int8_bound,
    z2_terms_pass,
)
from tests.unit.stats import ALPHA, mean_interval
from tests.unit.tiny import tiny_model

pytestmark = pytest.mark.skipif(not passes.int8_products_supported(), reason="torch has no oneDNN int8 linear here")


@pytest.fixture
def int8_everywhere(monkeypatch):
    """The int8 path on for every product of binary inputs (also on CPUs without AMX, where it is
    correct but not faster), whatever their size."""
    monkeypatch.setitem(passes._INT8, "available", True)
    monkeypatch.setattr(passes, "INT8_MIN_WORK", 0)


def _weights(m: int, n: int, seed: int) -> torch.Tensor:
    """Glorot-sized weights whose columns span four orders of magnitude, one zero row, one row with
    a single large entry: the cases a per-row scale handles worst."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(m, n, generator=g) * torch.logspace(-3, 1, n)[torch.randperm(n, generator=g)] * 0.1
    w[0] = 0.0
    w[1] = 1e-4
    w[1, 3] = 50.0
    return w


def test_split_reconstructs_every_weight_within_the_last_terms_half_step():
    """Σ_t s_t I_t equals w up to s_3 / 2 = max_j |w_ij| / (2·127·254²) per entry (float64), every term
    fits int8 without wrapping (|I| ≤ 127), and a zero row stays zero. Catches a wrong scale step, a
    remainder that overflows int8 (it would wrap to the opposite sign: an error of ~s_t·256) and a
    lost term."""
    w = _weights(64, 200, 0)
    ints, scales = split_int8(w)
    assert len(ints) == 3 and all(i.dtype == torch.int8 for i in ints)
    rec = sum(s.double().unsqueeze(1) * i.double() for i, s in zip(ints, scales))
    row_max = w.double().abs().amax(1, keepdim=True)
    err = (rec - w.double()).abs()
    # the scales are stored in float32: allow their rounding (2⁻²⁴ relative) on top of the half step
    assert bool((err <= row_max * (0.5 / (127 * INT8_STEP**2) + 2.0**-23)).all()), float((err / row_max.clamp(min=1e-30)).max())
    assert bool((rec[0] == 0).all())
    assert all(int(i.abs().max()) <= 127 for i in ints)


@pytest.mark.parametrize("density", [0.05, 0.5, 0.95])
def test_int8_logits_match_float64_within_the_fp32_sized_bound(density):
    """h Wᵀ + b for binary h at three densities, into a fresh tensor, a contiguous buffer and a
    strided column slice of a wider buffer (as the passes use it, with and without a dirty scratch buffer): every logit within
    ``want_int8_bound`` of the float64 product, a bound of the size of fp32's own error (checked:
    within 30× the largest error an fp32 product makes on the same data, and that error is not
    zero). Catches a missing bias, a term scaled by the wrong step, a wrong zero point or an output
    written to the wrong columns."""
    w, b = _weights(96, 300, 1), torch.randn(96, generator=torch.Generator().manual_seed(2))
    h = (torch.rand(257, 300, generator=torch.Generator().manual_seed(3)) < density).float()
    pk = pack_int8(w, b)
    want, bound = want_int8_bound(h, w, b)
    fp32_err = float(((h @ w.t() + b).double() - want).abs().max())
    assert 0 < float(bound.max()) < 30 * max(fp32_err, 1e-7), (float(bound.max()), fp32_err)
    wide = torch.full((257, 130 + 96), float("nan"))
    outs = {"new": int8_logits(pk, h), "contiguous": int8_logits(pk, h, torch.empty(257, 96))}
    outs["strided"] = int8_logits(pk, h, wide[:, 100:196])
    wide2 = torch.full((257, 130 + 96), float("nan"))
    outs["strided, scratch"] = int8_logits(pk, h, wide2[:, 100:196], scratch=torch.full((257, 96), 7.0))
    for name, got in outs.items():
        assert bool(((got.double() - want).abs() <= bound).all()), name
    for buf in (wide, wide2):
        assert torch.isnan(buf[:, :100]).all() and torch.isnan(buf[:, 196:]).all()  # nothing written beside


def test_a_changed_weight_is_packed_again_and_a_nan_weight_falls_back_to_fp32(int8_everywhere):
    """The packed terms follow the parameters: after an in-place update (as an optimiser makes) the
    logits are those of the new weights; a NaN weight is not split (it would become an arbitrary
    integer) but computed in fp32, so the NaN reaches the logits. Catches stale packed weights after
    a training step and a NaN silently turned into a finite estimate."""
    m = BiHM(ModelConfig(20, (12, 6)), make_generator(0))
    h = (torch.rand(50, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    first = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.allclose(first, m.p_logits(1, h), atol=1e-5)
    with torch.no_grad():
        m.p_weights[0].add_(1.0)
    again = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.allclose(again, m.p_logits(1, h), atol=1e-5)
    assert not torch.allclose(again, first, atol=0.5)
    with torch.no_grad():
        m.p_weights[0][3, 2] = float("nan")
    with torch.no_grad():
        bad = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.isnan(bad[:, 3]).all()  # as in fp32: 0 · NaN is NaN
    assert torch.isfinite(bad[:, [j for j in range(20) if j != 3]]).all()


def test_packed_weights_follow_training_steps_and_writes_that_bypass_version_counters(int8_everywhere):
    """Estimates between training steps use the weights of now: torch's fused Adam kernel writes the
    parameters without bumping their version counters, so packed terms keyed on versions alone kept
    the first epoch's weights — every validation and 2 log Z after it in the same process was
    computed for the epoch-1 model (seen: validation log p~* falling while the bound rose; best.h5,
    early stopping and repro's lr choice followed). Also a write through a numpy view (no version
    bump at all). Catches packed weights that outlive a change of the parameters."""
    from bihm_app.engine.training import Trainer, TrainConfig

    m = BiHM(ModelConfig(20, (12, 6)), make_generator(0))
    x = (torch.rand(16, 20, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    h = (torch.rand(50, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    before = Products(m, int8=True).logits("p", 1, h, binary=True)  # packs the weights
    trainer = Trainer(m, TrainConfig(K=4, batch_size=16, lr=0.05), make_generator(3))
    for _ in range(3):
        trainer.step(x)
    after = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.allclose(after, m.p_logits(1, h), atol=1e-5)
    assert not torch.allclose(after, before, atol=1e-2)  # the steps did move the weights
    with torch.no_grad():
        m.p_weights[0].detach().numpy()[:] *= 2.0  # numpy: the version counter does not move
    doubled = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.allclose(doubled, m.p_logits(1, h), atol=1e-5)


def test_paper12_log_weights_and_z2_terms_equal_the_fp32_path_draw_for_draw(monkeypatch):
    """The int8 path draws the same random numbers as the fp32 path, so with the same seed both see
    the same samples: log p(x, h), log q(h | x) of K = 40 samples of 8 binary points through the
    paper12 net (its products large enough to take the int8 path at the default threshold), and 700
    terms of the Z² estimator, agree to 10⁻³ nats (fp32 rounding of sums of ~2,500 terms, totals
    near −1,000, where one fp32 step is 6·10⁻⁵). Catches any
    product of the passes wired to the wrong layer, weight or bias on the int8 path, and a binary
    flag set on a product whose input is not binary (the logits of q(h_1 | x) are fp32 for data x)."""
    if not passes.int8_products_available():
        monkeypatch.setitem(passes._INT8, "available", True)
    m = BiHM(ModelConfig(784, PAPER12), make_generator(0))
    x = (torch.rand(8, 784, generator=torch.Generator().manual_seed(4)) < 0.2).float()
    x[0] = 0.5  # not binary: must not go through the int8 path

    def run(on: bool):
        monkeypatch.setitem(passes._INT8, "available", on)
        lw = log_weights_pass(m, x, 40, make_generator(9), ws=Workspace())
        z = z2_terms_pass(m, 700, 1, make_generator(10), ws=Workspace())
        return lw, z

    (lp8, lq8), z8 = run(True)
    (lp, lq), z = run(False)
    assert torch.allclose(lp8, lp, atol=1e-3, rtol=0) and torch.allclose(lq8, lq, atol=1e-3, rtol=0)
    assert torch.allclose(z8, z, atol=1e-3, rtol=0)
    assert float((lp8 - lp).abs().max()) > 0  # the int8 path was taken (its rounding differs)


def test_estimates_through_int8_products_match_exact_enumeration(int8_everywhere):
    """A float32 tiny BiHM with every product on the int8 path: log p̃*(x) and log p(x) at K = 3·10⁴
    of 16 visible states inside the exact intervals of the weight distribution (as
    test_estimators.test_point_estimates_match_exact_within_se, float64 oracle from the same
    parameters; false-alarm rate 10⁻⁴ for all 32). Catches an int8 product that biases the weights
    (a missing term moves log w by far more than the intervals' width)."""
    m64 = tiny_model((6, 4, 3), seed=2, scale=0.5)
    t = exact_tables(m64)
    m = m64.float()
    X = all_states(6)[::4].float()
    K = 30_000
    est = point_estimates(m, X, K, make_generator(K), k_chunk=997)
    lp, lq = t.log_pxh[::4].flatten(1), t.log_qhx[::4].flatten(1)
    q, w = lq.exp(), torch.exp(0.5 * (lp - lq))
    a = ALPHA / (2 * 16)
    (lo1, hi1), (lo2, hi2) = (mean_interval(w**k, q, K, a) for k in (1, 2))
    slack = 1e-4  # fp32 rounding of the log weights (the intervals are for exact float64 weights)
    got_pt, got_p = est.log_ptilde.double(), est.log_p.double()
    assert bool(((got_pt >= 2 * torch.log(lo1) - slack) & (got_pt <= 2 * torch.log(hi1) + slack)).all())
    assert bool(((got_p >= torch.log(lo2) - slack) & (got_p <= torch.log(hi2) + slack)).all())


def test_a_gibbs_sweep_through_int8_products_draws_what_the_fp32_sweep_draws(monkeypatch):
    """One sweep of Algorithm 2 on paper12 (6 chains, K = 12 proposals, inner K = 3), int8 path on and
    off with the same seed: the same state afterwards (the log weights differ by fp32 rounding only,
    far below the gaps between the Gumbel-perturbed candidates) and the same visible means. Catches
    the x step's q(h_1 | x^(k)) logits or the latent steps' logits of the layers below and above the
    candidates (all on the int8 path here) computed from the wrong layer or weights."""
    from bihm_app.engine import gibbs

    m = BiHM(ModelConfig(784, PAPER12), make_generator(0)).eval()
    start = gibbs.GibbsState(m.sample_p(6, make_generator(3)))
    cfg = gibbs.GibbsConfig(12, inner_K=3)

    def sweep(on: bool):
        monkeypatch.setitem(passes._INT8, "available", on)
        monkeypatch.setattr(passes, "INT8_MIN_WORK", 0 if on else passes.INT8_MIN_WORK)
        return gibbs.gibbs_sweep(m, gibbs.GibbsState(list(start.hs)), make_generator(4), cfg)

    (s8, means8), (s, means) = sweep(True), sweep(False)
    assert all(torch.equal(a, b) for a, b in zip(s8.hs, s.hs))
    assert torch.allclose(means8, means, atol=1e-6)
    assert torch.allclose(s8.log_sqrt_ptilde, s.log_sqrt_ptilde, atol=2e-4)
    assert not torch.equal(s8.log_sqrt_ptilde, s.log_sqrt_ptilde)  # the int8 path was taken


def test_a_refused_int8_product_falls_back_to_fp32_for_good(int8_everywhere, monkeypatch):
    """If oneDNN raises on a product (an unusual shape, a build without the kernel), the logits come
    from the fp32 product and the int8 path stays off: catches an estimate that dies halfway with a
    RuntimeError from an optional speed-up."""
    m = BiHM(ModelConfig(20, (12, 6)), make_generator(0))
    h = (torch.rand(50, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()

    def refuse(*args, **kwargs):
        raise RuntimeError("onednn: unsupported")

    monkeypatch.setattr(passes, "int8_logits", refuse)
    with torch.no_grad():
        got = Products(m, int8=True).logits("p", 1, h, binary=True)
    assert torch.allclose(got, m.p_logits(1, h).detach(), atol=1e-6)
    assert not passes.int8_products_available()


def test_a_fixed_weights_scope_checks_the_packed_weights_once_and_ends_with_the_scope(int8_everywhere, monkeypatch):
    """The chunks of one estimate (and a Gibbs sweep) run many passes with the same weights: inside
    ``Workspace.fixed_weights`` the packed weights are checked against the parameters (their
    float64 fingerprint, ~0.4 ms a pass for paper12) once per weight, not once per pass. Catches a
    scope that does not share its checks (fingerprints per chunk again) and one that outlives its
    block (a change of the weights after it must be seen). The estimate inside the scope must equal
    the one outside it draw for draw."""
    m = BiHM(ModelConfig(20, (12, 6)), make_generator(0))
    x = (torch.rand(5, 20, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    calls = []
    real = passes._fingerprint
    monkeypatch.setattr(passes, "_fingerprint", lambda w, b: calls.append(1) or real(w, b))
    ws = Workspace()

    def passes_(g):
        return [log_weights_pass(m, x, 4, g, ws=ws)[0].clone() for _ in range(10)]

    outside = passes_(make_generator(5))
    per_pass = len(calls)
    calls.clear()
    with ws.fixed_weights():
        inside = passes_(make_generator(5))
    assert per_pass == 10 * len(calls) > 0, (per_pass, len(calls))  # each weight checked once in the scope
    assert all(torch.equal(a, b) for a, b in zip(inside, outside))
    calls.clear()
    point_estimates(m, x, 40, make_generator(5), k_chunk=4, ws=ws)  # an estimate opens a scope itself
    assert len(calls) * 10 == per_pass
    assert "int8" not in ws.memo  # the scope ended with the estimate
    with torch.no_grad():
        m.p_weights[0].detach().numpy()[:] *= 2.0  # no version bump: only the fingerprint sees it
    h = (torch.rand(30, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    assert torch.allclose(Products(m, int8=True, ws=ws).logits("p", 1, h, binary=True), m.p_logits(1, h), atol=1e-5)
    with ws.fixed_weights(), ws.fixed_weights():  # re-entrant: the inner scope keeps the outer's checks
        Products(m, int8=True, ws=ws).logits("p", 1, h, binary=True)
        assert "int8" in ws.memo
    assert "int8" not in ws.memo
