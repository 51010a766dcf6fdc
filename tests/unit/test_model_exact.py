"""The model's distributions normalise and the enumeration oracle agrees with the model's own methods."""

import itertools
import math

import pytest
import torch

from bihm_app.engine.exact import all_states, exact_tables, state_index
from bihm_app.engine.model import BiHM, ModelConfig, PAPER12, parameter_shapes, parse_layers
from tests.unit.tiny import tiny_model


def test_p_and_q_normalise():
    m = tiny_model((5, 3, 2))
    t = exact_tables(m)
    assert float(torch.logsumexp(t.log_pxh.flatten(), 0)) == pytest.approx(0.0, abs=1e-12)
    # q(h | x) sums to one for every x
    per_x = torch.logsumexp(t.log_qhx.flatten(1), 1)
    assert torch.allclose(per_x, torch.zeros_like(per_x), atol=1e-12)


def test_tables_match_model_methods_configuration_by_configuration():
    m = tiny_model((4, 3, 2), seed=3)
    t = exact_tables(m)
    states = [all_states(n) for n in m.sizes]
    for ix, i1, i2 in itertools.product(range(16), range(8), range(4)):
        hs = [states[0][ix : ix + 1], states[1][i1].view(1, 1, -1), states[2][i2].view(1, 1, -1)]
        assert float(m.log_p(hs).detach()) == pytest.approx(float(t.log_pxh[ix, i1, i2]), abs=1e-12)
        assert float(m.log_q(hs).detach()) == pytest.approx(float(t.log_qhx[ix, i1, i2]), abs=1e-12)


def test_sum_of_ptilde_is_z_squared_and_bounds_hold():
    m = tiny_model((6, 4, 3), seed=1)
    t = exact_tables(m)
    # Σ_x p̃*(x) = Z² ≤ 1 (Cauchy–Schwarz), p* normalises, p̃* ≤ p* and log p* = log p̃* + 2 D_B
    assert float(t.log_z2) < 0.0
    assert float(torch.logsumexp(t.log_pstar, 0)) == pytest.approx(0.0, abs=1e-12)
    assert bool((t.log_ptilde <= t.log_pstar).all())
    # Z = Σ_{x,h} sqrt(p(x,h) q(h|x) p*(x)) — the normaliser of p*(x,h)
    assert float(torch.logsumexp(t.log_pstar_joint.flatten(), 0)) == pytest.approx(0.0, abs=1e-12)
    # marginal of p*(x, h) over h is p*(x)
    assert torch.allclose(torch.logsumexp(t.log_pstar_joint.flatten(1), 1), t.log_pstar, atol=1e-12)


def test_z_is_one_when_p_and_q_agree():
    # A one-layer model with p(x|h) p(h) = q(h|x) p(x) only if they agree; a model whose weights are all
    # zero makes x and h independent under both, and then p and q agree exactly iff q's h-marginal
    # equals p's prior: Z must then be 1 and p̃* = p.
    m = BiHM(ModelConfig(3, (2,))).double()
    with torch.no_grad():
        for w in m.weights():
            w.zero_()
        m.q_biases[0].copy_(m.p_prior)
    t = exact_tables(m)
    assert float(t.log_z2) == pytest.approx(0.0, abs=1e-12)
    assert torch.allclose(t.log_ptilde, t.log_px, atol=1e-12)


def test_state_index_inverts_all_states():
    s = all_states(5)
    assert torch.equal(state_index(s), torch.arange(32))


def test_parameter_shapes_match_module_and_init():
    cfg = ModelConfig(784, PAPER12)
    m = BiHM(cfg)
    assert parameter_shapes(cfg) == {k: tuple(v.shape) for k, v in m.state_dict().items()}
    # Thesis init: biases −1, Glorot-uniform weights within ±sqrt(6/(fan_in+fan_out))
    assert all(bool((b == -1).all()) for b in [m.p_prior, *m.p_biases, *m.q_biases])
    w = m.p_weights[0]
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert float(w.detach().abs().max()) <= bound and float(w.detach().abs().max()) > 0.9 * bound
    assert 650_000 < m.n_parameters()["total"] < 800_000  # "~700k params" in the thesis' table


@pytest.mark.parametrize(
    "spec, ok",
    [("200,200", (200, 200)), ("paper12", PAPER12), (" 10 , 5", (10, 5)), ("0,3", None), ("a,b", None), ("", None), ("-1", None)],
)
def test_parse_layers(spec, ok):
    if ok is None:
        with pytest.raises(ValueError):
            parse_layers(spec)
    else:
        assert parse_layers(spec) == ok
