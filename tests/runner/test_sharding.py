"""The sharded estimators of `bihm eval`/`bihm logz` (runner/sharding.py) without torchrun: the
chunks of two ranks partition the single process's chunks, and merged moments give its estimates."""

import math

import pytest
import torch

from bihm_app.engine.estimators import LogMoments
from bihm_app.engine.exact import all_states, exact_tables
from bihm_app.runner.sharding import evaluate_sharded, local_moments, log_z2_sharded, rank_share
from tests.unit.tiny import tiny_model


def test_two_ranks_partition_the_samples_and_merge_to_the_single_process_moments():
    """Catches ranks that compute overlapping or missing chunks (the counts) and a merge that is
    not the moments of the union (the merged s1/s2 must equal the single process's)."""
    m = tiny_model((6, 4, 3), seed=2).float()
    x = all_states(6, torch.float32)[::2]  # 32 points
    K = 20_000  # chunks of 65,536 // 32 = 2048 samples (a tiny model): 10 chunks per batch of 32 points
    one_h, one_f = local_moments(m, x, K, seed=5, batch=32)
    parts = [local_moments(m, x, K, seed=5, batch=32, rank=r, world=2) for r in (0, 1)]
    assert torch.equal(one_h.n, torch.full((32,), K))
    assert all(0 < int(p[0].n[0]) < K for p in parts) and torch.equal(parts[0][0].n + parts[1][0].n, one_h.n)
    for i, one in ((0, one_h), (1, one_f)):
        merged = parts[0][i].merge(parts[1][i])
        assert torch.allclose(merged.s1, one.s1, rtol=1e-12) and torch.allclose(merged.s2, one.s2, rtol=1e-12)


def test_sharded_estimates_match_exact_values_within_their_se():
    """The per-chunk seeding keeps the estimators consistent: log p̃* of every point and 2 log Z
    agree with exact enumeration within a few standard errors."""
    m = tiny_model((6, 4, 3), seed=2)
    t = exact_tables(m)
    x = all_states(6)
    est = evaluate_sharded(m, x, 5000, seed=1, batch=64)
    assert abs(est.log_ptilde.mean - float(t.log_ptilde.mean())) < 4.5 * est.log_ptilde.se + 0.01
    z = log_z2_sharded(m, 200_000, seed=3, chunk=30_000)
    assert abs(z.mean - float(t.log_z2)) < 4.5 * z.se and z.se > 0


def test_rank_share_adds_up():
    for total, chunk, world in ((70_000, 20_000, 2), (5, 2, 3), (10, 20, 4)):
        assert sum(rank_share(total, chunk, r, world) for r in range(world)) == total
    with pytest.raises(ValueError):
        log_z2_sharded(tiny_model((3, 2)), 1, seed=0)


def test_progress_moves_within_a_batch_of_a_large_k_and_adds_up_to_the_points():
    """A batch of points at a large K is one long computation (K = 10⁶ on 100 points of the 12-layer
    net: ~15 minutes) during which the bar stood still at 0 with no time left shown. Catches that:
    progress arrives chunk by chunk, never backwards, and adds up to exactly the points at the end
    of every batch (the bar then closes), with the same estimates as without a progress callback."""
    import math

    import torch

    from bihm_app.engine.model import BiHM, ModelConfig, make_generator
    from bihm_app.runner.sharding import local_moments

    torch.set_num_threads(1)
    model = BiHM(ModelConfig(20, (30, 10)), make_generator(0))
    x = (torch.rand(7, 20, generator=make_generator(1)) < 0.5).float()
    calls = []
    with_bar = local_moments(model, x, 40_000, seed=3, batch=4, progress=calls.append)  # 5 chunks a batch
    plain = local_moments(model, x, 40_000, seed=3, batch=4)
    assert torch.equal(with_bar[0].s1, plain[0].s1) and torch.equal(with_bar[1].s2, plain[1].s2)
    assert len(calls) > 4 and all(c >= 0 for c in calls)
    running = [sum(calls[: i + 1]) for i in range(len(calls))]
    assert any(0 < r < 4 and r != int(r) for r in running)  # within the first batch
    assert math.isclose(running[-1], 7, rel_tol=1e-12)
    assert any(math.isclose(r, 4, rel_tol=1e-12) for r in running)  # the first batch whole
