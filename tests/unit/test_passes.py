"""The element-wise core of the passes (engine/passes.py)."""

import torch

from bihm_app.engine.passes import Workspace, bern_logp_sum


def test_bern_logp_sum_is_exact_where_exp_overflows_and_where_it_does_not():
    """Σ_i log B(v_i | σ(a_i)) against float64 softplus for logits up to ±200: rows whose ζ = (1−2v)a
    stays below 88.7 take exp/add/log in place, rows with a larger ζ (exp overflows float32) are
    recomputed with the softplus kernel; both agree with float64 to 1e-5 relative, NaN stays NaN and
    an enormous logit on the wrong side gives its enormous log-probability. Catches an overflowed row reported as −inf (or
    as the other rows' value) when the check is missing, and a fast path that is not exact."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 50, generator=g) * 5
    v = (torch.rand(6, 50, generator=g) < 0.5).float()
    a[1, 7], v[1, 7] = 150.0, 0.0  # ζ = 150: exp overflows
    a[2, 3], v[2, 3] = -200.0, 1.0  # ζ = 200
    a[3, 0], v[3, 0] = -200.0, 0.0  # ζ = −200: harmless
    a[4, 5] = float("nan")
    a[5, 9], v[5, 9] = 1e30, 0.0  # an enormous finite logit on the wrong side
    want = -torch.nn.functional.softplus(((1 - 2 * v) * a).double()).sum(-1)
    for ws in (None, Workspace()):
        got = bern_logp_sum(a, v, ws).double()
        ok = torch.arange(4)
        assert torch.allclose(got[ok], want[ok], rtol=1e-5, atol=1e-4), (got, want)
        assert torch.isnan(got[4]) and float(got[5]) <= -1e30
        assert abs(float(got[1]) - float(want[1])) < 1e-3 and float(got[1]) < -150
