"""Pieces of the sampler: the inner estimate of sqrt p̃*, inpainting scores, clamping, trajectories,
float32, masks of every kind."""

import math

import pytest
import torch

from bihm_app.engine import gibbs
from bihm_app.engine.exact import all_states, exact_tables
from bihm_app.engine.masks import mask_from_spec
from bihm_app.engine.model import BiHM, ModelConfig, make_generator
from tests.unit.tiny import tiny_model


def test_inner_estimate_of_sqrt_ptilde_is_unbiased():
    """exp(estimate_log_sqrt_ptilde) = mean_j w_j is unbiased for sqrt p̃*(x) even with one inner
    sample: the property that makes the x step consistent with an estimated p̃*."""
    m = tiny_model((5, 3, 2), seed=2, scale=1.5)
    exact = 0.5 * exact_tables(m).log_ptilde  # (32,)
    xs = all_states(5)
    n = 20_000
    est = gibbs.estimate_log_sqrt_ptilde(m, xs.repeat_interleave(n, 0), 1, make_generator(0)).view(32, n)
    w = est.exp()
    mean, se = w.mean(1), w.std(1) / math.sqrt(n)
    z = (mean - exact.exp()) / se
    assert float(z.abs().max()) < 4.5, z
    # … while (3.5) in log space, 2·log mean, is biased low for small inner K (Jensen): not what we use
    assert float((2 * est.mean(1) - 2 * exact).mean()) < -0.01


def test_inpaint_score_counts_only_missing_pixels():
    x_true = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    known = torch.tensor([True, True, False, False])
    means = torch.tensor([[0.0, 1.0, 0.75, 0.5]])  # wrong on the known pixels: must not matter
    completion = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    s = gibbs.inpaint_score(means, completion, x_true, known)
    assert float(s.log_lik[0]) == pytest.approx(math.log(0.75) + math.log(0.5))
    assert int(s.n_missing[0]) == 2 and float(s.error_rate[0]) == pytest.approx(0.5)


def test_inpaint_keeps_known_pixels_in_draws_means_and_trajectory():
    m = BiHM(ModelConfig(16, (6, 4, 3)), make_generator(0))  # float32, three layers
    x = (torch.rand(3, 16, generator=make_generator(1)) < 0.5).float()
    known = mask_from_spec("bottom", 16, (4, 4)).logical_not()
    res = gibbs.inpaint(m, x, known, 4, make_generator(2), gibbs.GibbsConfig(6, inner_K=3), record_trajectory=True)
    assert res.x.dtype == torch.float32 and res.x.shape == (3, 16)
    assert len(res.trajectory) == 5  # start + 4 sweeps
    for t in [res.x, res.means, *res.trajectory]:  # the trajectory is kept on the CPU
        assert torch.equal(t[:, known.to(t.device)].cpu(), x[:, known.to(x.device)].cpu())
    assert bool(((res.means >= 0) & (res.means <= 1)).all())
    assert torch.equal(res.pictures(True), res.means) and torch.equal(res.pictures(False), res.x)


def test_chains_are_reproducible_with_the_same_generator_seed():
    m = BiHM(ModelConfig(12, (5, 3)), make_generator(0))
    a = gibbs.run_gibbs(m, 4, 3, make_generator(9), gibbs.GibbsConfig(5, inner_K=2))
    b = gibbs.run_gibbs(m, 4, 3, make_generator(9), gibbs.GibbsConfig(5, inner_K=2))
    c = gibbs.run_gibbs(m, 4, 3, make_generator(10), gibbs.GibbsConfig(5, inner_K=2))
    assert torch.equal(a.x, b.x) and not torch.equal(torch.cat(a.state.hs[1:], 1), torch.cat(c.state.hs[1:], 1))


@pytest.mark.parametrize("layer", [1, 3])
def test_layerwise_generation_at_the_bottom_and_the_top(layer):
    m = tiny_model((6, 4, 3, 2), seed=1)
    res = gibbs.layerwise_samples(m, layer, 30, make_generator(0))
    assert res.x.shape == (30, 6) and res.means.shape == (30, 6)
    if layer == 1:  # h_1 fixed: every completion has the same Bernoulli means
        assert torch.allclose(res.means, res.means[:1].expand(30, -1))
        assert torch.allclose(res.means[0], torch.sigmoid(m.p_logits(1, res.top[1]))[0])


def test_sweep_config_rejects_impossible_K():
    with pytest.raises(ValueError, match="K must be at least 2"):
        gibbs.GibbsConfig(1, keep_current=True)
    with pytest.raises(ValueError, match="inner K"):
        gibbs.GibbsConfig(3, inner_K=0)


def test_masks_are_the_same_whatever_the_default_device():
    """Masks are built on the CPU with a CPU generator: ``random:F`` with a seed names the same pixels
    on every machine, and a default device (a GPU, or here "meta", which holds no values) is not
    used. Catches a bare ``torch.Generator()`` next to tensors on the default device."""
    specs = [("random:0.3", 50, None), ("bottom", 784, (28, 28)), ("centre", 784, (28, 28)), ("top", 7, None)]
    want = [mask_from_spec(*s, seed=4) for s in specs]
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        got = [mask_from_spec(*s, seed=4) for s in specs]
    finally:  # None: no default-device mode left behind (it would slow every later torch call)
        torch.set_default_device(None if previous.type == "cpu" else previous)
    assert all(m.device.type == "cpu" for m in got)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert mask_from_spec("random:0.3", 50, None, seed=4, device="meta").device.type == "meta"


def test_mask_shapes():
    top, right, centre = (mask_from_spec(s, 784, (28, 28)).view(28, 28) for s in ("top", "right", "centre"))
    assert bool(top[:14].all()) and not bool(top[14:].any())
    assert bool(right[:, 14:].all()) and not bool(right[:, :14].any())
    assert int(centre.sum()) == 14 * 14 and bool(centre[7:21, 7:21].all())
    assert torch.equal(mask_from_spec("random:0.3", 50, None, seed=4), mask_from_spec("random:0.3", 50, None, seed=4))
    vec = mask_from_spec("bottom", 7, None)
    assert vec.tolist() == [False, False, False, True, True, True, True]
    with pytest.raises(ValueError, match="needs image data"):
        mask_from_spec("left", 7, None)
    with pytest.raises(ValueError, match="does not match"):
        mask_from_spec("top", 780, (28, 28))


@pytest.mark.parametrize("spec", ["random:", "random: ", "randomly", "random_0.3:0.3", "random:nan", "random:inf",
                                  "random:1_0e-1", "random:0x1", "random:1.5", "random:-0.1", "random:0.3x"])  # fmt: skip
def test_mask_specs_with_a_bad_fraction_are_refused(spec):
    """The engine read "random:" and "randomly" as half the pixels, "random_0.3:0.3" as 0.3 and
    "random:1_0e-1" as 1.0 (Python's float reads "1_0" as 10): a typo silently changed what
    inpainting hides. Each is one ValueError line naming the spec."""
    with pytest.raises(ValueError, match="mask|fraction") as info:
        mask_from_spec(spec, 50, None)
    assert "\n" not in str(info.value)


def test_mask_specs_that_are_meant_are_read():
    assert int(mask_from_spec("random", 50, None).sum()) == 25  # the documented default fraction
    assert int(mask_from_spec("Random : .2", 50, None).sum()) == 10
    assert int(mask_from_spec("random:2.5e-1", 40, None).sum()) == 10
