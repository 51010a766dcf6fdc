"""``precision="bf16"``: matrix products in bf16, fp32 master weights and log-probability sums.

The check that matters is the end result: training a small net with every product in bf16 reaches
the same exact validation bound (mean log p̃*(x) by enumeration, so no estimator noise) as fp32
training from the same start, within the standard error of that bound over the validation points.
A negative control shows the comparison has the power to see a broken bf16 path: keeping the
*weights* in bf16 (updates below bf16's resolution are lost) lands ~10 standard errors lower.
"""

import math

import pytest
import torch

import bihm_app.engine.passes as passes
from bihm_app.engine.exact import exact_tables, state_index
from bihm_app.engine.model import BiHM, ModelConfig, make_generator
from bihm_app.engine.training import Trainer, TrainConfig

D = 10
LAYERS = (6, 4)


def _data(n: int, seed: int) -> torch.Tensor:
    """Four prototypes of 10 bits with 10 % bit noise."""
    protos = (torch.rand(4, D, generator=make_generator(1)) < 0.5).float()
    g = make_generator(seed)
    idx = torch.randint(0, 4, (n,), generator=g)
    return (protos[idx] + (torch.rand(n, D, generator=g) < 0.1).float()) % 2


def _train_and_bound(precision: str, epochs: int = 12, weights_in_bf16: bool = False) -> tuple[float, float]:
    train, valid = _data(3000, 2), _data(2000, 3)
    m = BiHM(ModelConfig(D, LAYERS), make_generator(0))
    tr = Trainer(m, TrainConfig(K=10, batch_size=50, lr=3e-3, l1=0.0, precision=precision), make_generator(1))
    for _ in range(epochs):
        for xb in train.split(50):
            assert tr.step(xb).finite
            if weights_in_bf16:
                with torch.no_grad():
                    for p in m.parameters():
                        p.copy_(p.to(torch.bfloat16).float())
    v = exact_tables(m.double()).log_ptilde[state_index(valid)]
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


@pytest.fixture
def every_product_in_bf16(monkeypatch):
    monkeypatch.setattr(passes, "BF16_MIN_WORK", 0)  # tiny products would otherwise stay fp32


def test_bf16_training_reaches_the_fp32_validation_bound(every_product_in_bf16):
    torch.set_num_threads(1)
    fp32, se = _train_and_bound("fp32")
    bf16, _ = _train_and_bound("bf16")
    untrained = float(exact_tables(BiHM(ModelConfig(D, LAYERS), make_generator(0)).double()).log_ptilde.mean())
    assert fp32 > untrained + 1.0  # training did something
    assert abs(bf16 - fp32) < 2 * se, (bf16, fp32, se)
    broken, _ = _train_and_bound("bf16", weights_in_bf16=True)
    assert broken < fp32 - 3 * se, (broken, fp32, se)


def test_bf16_products_are_bf16_and_results_fp32(every_product_in_bf16):
    m = BiHM(ModelConfig(D, LAYERS), make_generator(0))
    prod = passes.Products(m, "bf16")
    h = (torch.rand(7, LAYERS[0], generator=make_generator(2)) < 0.5).float()
    a = prod.logits("p", 1, h)
    exact = h @ m.p_weights[0].detach().t() + m.p_biases[0].detach()
    assert a.dtype == torch.float32
    err = (a - exact).abs().max()
    assert 0 < err < 0.05  # rounded (so bf16 really ran), but only at bf16's resolution
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        passes.Products(m, "half")
