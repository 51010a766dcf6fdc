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
