"""The CUDA-graph update (engine/graphs.py) against the eager one.

The CUDA tests need a GPU and are skipped elsewhere; tools/gpu_session.sh runs them on a lent one
(results in benchmarks/RESULTS.md). The CPU test runs everywhere.
"""

import pytest
import torch

from bihm_app.engine.exact import all_states, exact_log_ptilde_fn, state_index
from bihm_app.engine.model import BiHM, ModelConfig, make_generator
from bihm_app.engine.training import Trainer, TrainConfig

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _trainer(device, graph: bool, seed: int = 0, lr: float = 1e-2) -> Trainer:
    model = BiHM(ModelConfig(6, (4, 3)), make_generator(seed)).to(device)
    return Trainer(model, TrainConfig(K=8, batch_size=16, lr=lr, cuda_graph=graph), make_generator(seed + 1, device))


def _data(device, n: int = 256) -> torch.Tensor:
    """Binary data from a random teacher net (6 visible units)."""
    teacher = BiHM(ModelConfig(6, (4, 3)), make_generator(99)).to(device)
    with torch.no_grad():
        return teacher.sample_p(n, make_generator(98, device))[0]


def _exact_mean_log_ptilde(model: BiHM, x: torch.Tensor) -> float:
    m = BiHM(ModelConfig(6, (4, 3)), make_generator(0)).double()
    m.load_state_dict({k: v.detach().double().cpu() for k, v in model.state_dict().items()})
    with torch.no_grad():
        return float(exact_log_ptilde_fn(m, state_index(x.double().cpu())).mean())


def test_on_the_cpu_the_flag_changes_nothing():
    """Catches the graph switch altering CPU training: with and without it, bit-identical updates."""
    torch.set_num_threads(1)
    x = (torch.rand(16, 6, generator=make_generator(5, "cpu"), device="cpu") < 0.3).float()  # on the CPU under BIHM_TEST_DEVICE too
    a, b = _trainer("cpu", True), _trainer("cpu", False)
    for _ in range(6):
        ra, rb = a.step(x), b.step(x)
        assert torch.equal(ra.objective, rb.objective)
    assert not a._graphs and all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


@cuda
def test_a_replay_is_the_eager_update_when_the_draws_are_certain():
    """With q's biases at ±30 every sample h ~ q(h|x) is certain, so the update is deterministic:
    the replayed update (gradients, L1, Adam with its step count) must equal the eager one. Catches
    a recording that keeps stale buffers, misses the L1 term or Adam's bias correction."""
    dev = torch.device("cuda")
    x = (torch.rand(16, 6, generator=make_generator(5, dev), device=dev) < 0.3).float()
    a, b = _trainer(dev, True), _trainer(dev, False)
    b.model.load_state_dict(a.model.state_dict())
    with torch.no_grad():
        for t in (a, b):
            for w, bias in zip(t.model.q_weights, t.model.q_biases):
                w.zero_()
                bias.copy_(torch.tensor([30.0, -30.0, 30.0, -30.0][: bias.numel()], device=dev))
    for i in range(6):  # 2 eager warm-up updates, then capture and replays
        ra, rb = a.step(x), b.step(x)
        torch.testing.assert_close(ra.objective, rb.objective, rtol=1e-5, atol=1e-5)
    assert len(a._graphs) == 1 and a._graph_error is None
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@cuda
def test_replays_draw_fresh_samples_and_train():
    """Catches a recording whose random draws are frozen (every replay the same samples) or that
    does not update the parameters: replays on the same x give different objectives, and 400
    replayed updates raise the exact mean log p̃*(x) of the data about as much as eager ones."""
    dev = torch.device("cuda")
    data = _data(dev)
    a, b = _trainer(dev, True, lr=3e-2), _trainer(dev, False, lr=3e-2)
    b.model.load_state_dict(a.model.state_dict())
    start = _exact_mean_log_ptilde(a.model, data)
    order = torch.randperm(data.shape[0] * 25, generator=make_generator(3)) % data.shape[0]
    objectives = []
    for i in range(400):
        xb = data[order[16 * i : 16 * i + 16].to(dev)]
        objectives.append(a.step(data[:16]) if i == 3 else a.step(xb))
        b.step(xb)
    assert len(a._graphs) == 1 and a._graph_error is None
    r1, r2 = a.step(data[:16]), a.step(data[:16])
    assert not torch.equal(r1.objective, r2.objective)
    gain_graph = _exact_mean_log_ptilde(a.model, data) - start
    gain_eager = _exact_mean_log_ptilde(b.model, data) - start
    assert gain_eager > 0.05 and gain_graph > 0.5 * gain_eager, (gain_graph, gain_eager)


@cuda
def test_a_non_finite_update_is_skipped_on_the_device_and_recordings_are_dropped():
    """Catches a replay that applies a NaN update (or counts it in Adam's step), and a recording
    that outlives a state load or a learning-rate change (it would write into stale tensors)."""
    dev = torch.device("cuda")
    x = (torch.rand(16, 6, generator=make_generator(5, dev), device=dev) < 0.3).float()
    t = _trainer(dev, True)
    for _ in range(4):
        t.step(x)
    assert len(t._graphs) == 1
    before = [p.detach().clone() for p in t.model.parameters()]
    steps = [float(st["step"]) for st in t.optimizer.state.values()]
    bad = x.clone()
    bad[0, 0] = float("nan")
    assert not t.step(bad).finite
    assert all(torch.equal(p, q) for p, q in zip(t.model.parameters(), before))
    assert [float(st["step"]) for st in t.optimizer.state.values()] == steps
    assert t.step(x).finite and not torch.equal(next(t.model.parameters()), before[0])
    t.set_lr(1e-3)
    assert not t._graphs
    for _ in range(4):
        t.step(x)
    t.load_state(t.state())
    assert not t._graphs
