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


def test_bern_logp_sum_over_the_logits_recomputes_them_only_when_exp_overflows():
    """With ``recompute`` the sum forms ζ over the logits (they are used up) and calls ``recompute``
    for the exact fallback only when a row overflowed: same sums as the out-of-place path with and
    without an overflowing entry, the function called 0 and 1 times. Catches the fallback reading the
    consumed buffer (it would take log(1 + e^ζ) of garbage: −inf or a wrong sum) and a recompute on
    every call (no saving)."""
    g = torch.Generator().manual_seed(1)
    base = torch.randn(5, 40, generator=g) * 6
    v = (torch.rand(5, 40, generator=g) < 0.5).float()
    for overflow in (False, True):
        a0 = base.clone()
        if overflow:
            a0[2, 4], v[2, 4] = 120.0, 0.0  # ζ = 120
        want = bern_logp_sum(a0, v).double()
        calls = []

        def again(a0=a0):
            calls.append(1)
            return a0.clone()

        a = a0.clone()
        got = bern_logp_sum(a, v, Workspace(), again).double()
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-5), (got, want)
        assert len(calls) == int(overflow)
        assert not torch.equal(a, a0)  # the logits were used up


def test_estimator_passes_stay_exact_when_the_logits_overflow_exp():
    """log_weights_pass and z2_terms_pass (logits used up by their log-probabilities, recomputed on
    overflow) against the model's own out-of-place log p / log q for a net with huge weights, where
    many ζ exceed 88.7: equal to 1e-5 relative. Catches a recompute that reads the wrong samples or
    writes the wrong columns (a layer's logits shifted), which would change the sums by many nats."""
    from bihm_app.engine.model import BiHM, ModelConfig, make_generator
    from bihm_app.engine.passes import Products, log_weights_pass, p_pass, sample_q_pass

    model = BiHM(ModelConfig(12, (8, 6, 4)), make_generator(0))
    with torch.no_grad():
        for w in [*model.p_weights, *model.q_weights]:
            w.mul_(60.0)  # logits of ±100s: exp overflows in many entries
    x = (torch.rand(3, 12, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    lp, lq = log_weights_pass(model, x, 7, make_generator(5), ws=Workspace())
    q = sample_q_pass(model, x, 7, make_generator(5), Products(model), None)  # the same draws, logits kept
    want_p = p_pass(model, x, q, Products(model), None).log_p
    assert torch.isfinite(lp).all() and torch.isfinite(lq).all()
    assert torch.allclose(lq, q.log_q, rtol=1e-5), (lq, q.log_q)
    assert torch.allclose(lp, want_p, rtol=1e-5), (lp, want_p)
    hs = [x.unsqueeze(1).expand(3, 7, 12)] + [q.h(l).view(3, 7, -1) for l in (1, 2, 3)]
    ref_p = model.log_p([x] + hs[1:])
    assert torch.allclose(lp.double(), ref_p.double(), rtol=1e-5), (lp, ref_p)


def test_z2_terms_with_logits_used_up_equal_the_out_of_place_sums(monkeypatch):
    """z2_terms_pass (every log-probability formed over its logits, recomputed on overflow) equals the
    same pass with out-of-place sums (``recompute`` dropped) for the same draws, on a net whose logits
    overflow exp and on a mild one: exactly the same terms to 1e-5. Catches the inner draws reading
    q's first-layer logits after log q(h | x) used them up, and a wrong recompute."""
    from bihm_app.engine import passes
    from bihm_app.engine.model import BiHM, ModelConfig, make_generator

    for scale, n_inner in ((1.0, 1), (60.0, 1), (60.0, 2)):
        model = BiHM(ModelConfig(12, (8, 6, 4)), make_generator(0))
        with torch.no_grad():
            for w in [*model.p_weights, *model.q_weights]:
                w.mul_(scale)
        got = passes.z2_terms_pass(model, 50, n_inner, make_generator(3), ws=Workspace())
        with monkeypatch.context() as m:
            plain = passes.bern_logp_sum
            m.setattr(passes, "bern_logp_sum", lambda a, v, ws=None, recompute=None, rows=None: plain(a, v, ws, None, rows))
            want = passes.z2_terms_pass(model, 50, n_inner, make_generator(3), ws=Workspace())
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (scale, (got - want).abs().max())


def test_blocks_are_the_layers_of_a_row_major_table_rearranged():
    """Blocks over layers 1 … 3 of sizes (4, 3, 2, 5) and N = 6 rows: each layer's block, the flat
    span of layers 2 … 3 and the row sums of a span equal the row-major table's columns, column
    ranges and row sums (layer by layer, the blocks one after the other). Catches an offset off by a
    layer, a block read across rows (view of the wrong width) and row sums that mix rows."""
    from bihm_app.engine.passes import Blocks

    sizes, N = (4, 3, 2, 5), 6
    table = torch.arange(N * 10, dtype=torch.float32).view(N, 10)  # columns: h1 (3) | h2 (2) | h3 (5)
    cols = {1: slice(0, 3), 2: slice(3, 5), 3: slice(5, 10)}
    flat = torch.cat([table[:, cols[l]].reshape(-1) for l in (1, 2, 3)])
    b = Blocks(flat, N, sizes, 1, 3)
    for l in (1, 2, 3):
        assert torch.equal(b[l], table[:, cols[l]]) and b[l].is_contiguous()
    assert torch.equal(b.span(2, 3), torch.cat([table[:, cols[2]].reshape(-1), table[:, cols[3]].reshape(-1)]))
    assert torch.equal(b.row_sums(2, 3)(b.span(2, 3)), table[:, 3:].sum(1))
    assert torch.equal(b.row_sums(1, 3)(b.span(1, 3)), table.sum(1))
    c = Blocks.alloc(None, "x", N, sizes, 0, 1, table)  # x included: D = 4, then h1
    assert c.buf.shape == (N * 7,) and c[0].shape == (N, 4) and c[1].shape == (N, 3)


def test_workspace_views_and_blocks_are_reused_and_follow_a_grown_buffer():
    """The workspace hands out the same view and the same Blocks again while a buffer keeps its
    storage, and new ones on the new storage once a larger request grew it. Catches stale views: a
    pass writing through a view of the freed storage (results lost, or memory of another tensor
    overwritten) after a bigger chunk or batch reallocated the buffer; and row sums kept for an
    earlier tensor applied to another one."""
    from bihm_app.engine.passes import Blocks

    ws, like, sizes = Workspace(), torch.empty(0), (4, 3, 2)
    a = ws.get("buf", (2, 3), like.dtype, like.device)
    assert ws.get("buf", (2, 3), like.dtype, like.device) is a
    b = Blocks.alloc(ws, "H", 6, sizes, 1, 2, like)
    assert Blocks.alloc(ws, "H", 6, sizes, 1, 2, like) is b and b.buf.numel() == 30
    b[1].fill_(1.0)
    b[2].fill_(2.0)
    assert torch.equal(b.row_sums(1, 2)(b.span(1, 2)), torch.full((6,), 7.0))
    other = torch.arange(30, dtype=torch.float32)  # the same layout, another tensor: summed afresh
    assert torch.equal(b.row_sums(1, 2)(other), torch.cat([other[:18].view(6, 3), other[18:].view(6, 2)], 1).sum(1))
    big = ws.get("buf", (4, 50), like.dtype, like.device)  # grows "buf": new storage
    again = ws.get("buf", (2, 3), like.dtype, like.device)
    assert again is not a and again.data_ptr() == big.data_ptr()
    grown = Blocks.alloc(ws, "H", 60, sizes, 1, 2, like)  # grows "H"
    b2 = Blocks.alloc(ws, "H", 6, sizes, 1, 2, like)
    assert b2 is not b and b2.buf.data_ptr() == grown.buf.data_ptr() and b2[2].data_ptr() == grown.buf.data_ptr() + 4 * 18
