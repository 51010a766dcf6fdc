"""The engine's Adam (engine/optim.py) is torch.optim.Adam: same updates, same state layout — and
building it does not import torch._dynamo (the second of start-up it exists to save)."""

import subprocess
import sys

import pytest
import torch

from bihm_app.engine.model import make_generator
from bihm_app.engine.optim import Adam


@pytest.mark.parametrize("fused", [True, False])
def test_updates_match_torch_adam(fused):
    """Catches a wrong bias correction, β or ε, or a missed step count (all move the parameters)."""
    g = make_generator(0)  # on the default device (``BIHM_TEST_DEVICE``)
    shapes = [(5, 3), (3,), (7,)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    opt = Adam(ours, lr=0.01)
    if not fused:
        opt._fused = False  # the foreach fallback
    ref_opt = torch.optim.Adam(ref, lr=0.01, foreach=True)
    for _ in range(25):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, q, gr in zip(ours, ref, grads):
            p.grad, q.grad = gr.clone(), gr.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(ours, ref):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
    ref_state = ref_opt.state_dict()["state"]
    for i, st in opt.state_dict()["state"].items():
        assert float(st["step"]) == float(ref_state[i]["step"]) == 25
        assert torch.allclose(st["exp_avg_sq"], ref_state[i]["exp_avg_sq"], rtol=1e-5)


def test_state_round_trips_and_loads_torch_adam_state():
    p = [torch.nn.Parameter(torch.ones(4))]
    ref = torch.optim.Adam([torch.nn.Parameter(torch.ones(4))], lr=0.1)
    ref.param_groups[0]["params"][0].grad = torch.full((4,), 0.5)
    ref.step()
    opt = Adam(p, lr=0.3)
    opt.load_state_dict(ref.state_dict())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1) and float(opt.state[0]["step"]) == 1
    again = Adam(p, lr=0.3)
    again.load_state_dict(opt.state_dict())
    assert torch.equal(again.state[0]["exp_avg"], opt.state[0]["exp_avg"])


def test_building_the_trainer_does_not_import_dynamo():
    code = ("import sys; from bihm_app.engine.model import BiHM, ModelConfig; from bihm_app.engine.training import Trainer, "
            "TrainConfig; import torch; t = Trainer(BiHM(ModelConfig(6, (3,))), TrainConfig(K=2), torch.Generator()); "
            "t.step(torch.zeros(2, 6)); print('torch._dynamo' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
