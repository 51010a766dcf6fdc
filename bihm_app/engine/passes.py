"""The engine's hot loops: passes through all layers with flat, row-major sample buffers.

The samples of every latent layer of one batch live side by side in one buffer H (rows, n_1 + … +
n_L) — row r holds sample r's h_1 … h_L — and so do the logits of the layers (A_q, A_p), aligned
column for column with the units they predict. The element-wise work of all layers is then a few
passes over whole buffers instead of a dozen small ones per layer, the log-probability of all
layers of a sample is one row sum, and a pass draws its uniforms in one call. Matrix products read
and write the buffers through strided views (no copies), and the buffers come from a
:class:`Workspace`, so a training step or the chunks of an estimate reuse the same memory.

Log-probabilities of binary v under logits a use

    log B(v | σ(a)) = Σ_i −softplus(ζ_i),   ζ = (1 − 2v) a   (one fused multiply-add per element)

with softplus(ζ) = log(1 + exp ζ) computed as exp, add, log in place (cheaper than torch's softplus
kernel on CPUs); a buffer with some ζ > 80, where exp would overflow, takes the softplus kernel.

Shapes: B data points, K samples each, N = B·K rows (samples of a point contiguous); layer sizes
``sizes = (D, n_1, …, n_L)``. ``Layout.cols(l)`` is h_l's column slice in H.

Everything here runs without autograd (samples are held fixed; gradients are closed-form).

Precision: :class:`Products` runs the matrix products in fp32 or, with ``precision="bf16"``, the
large ones (≥ :data:`BF16_MIN_WORK` multiply-adds, where bf16 matrix units pay for the casts) in
bf16: the fp32 parameters stay the master copy, bf16 copies are made once per pass, products
accumulate in fp32 inside the matrix unit and are rounded once to bf16 (bias included), and every
log-probability and sum is fp32. Binary samples are exact in bf16.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

PRECISIONS = ("fp32", "bf16")
#: ζ above this takes the softplus kernel (exp(ζ) overflows float32 at 88.7).
_EXP_SAFE = 80.0
#: Products smaller than this (multiply-adds) stay in fp32 under ``precision="bf16"``.
BF16_MIN_WORK = 1 << 24


class Workspace:
    """Named scratch buffers reused from call to call (a training step, the chunks of an estimate):
    after the first use a pass allocates almost nothing, so the allocator neither returns pages to
    the OS nor faults them back in (measured: a fifth of a paper12 step on a CPU)."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """A buffer of this shape (contents undefined), reusing the storage of an earlier call."""
        n = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype, device=device)
            self._bufs[name] = buf
        return buf[:n].view(shape)


def _buf(ws: Workspace | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    if ws is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return ws.get(name, shape, like.dtype, like.device)


def bern_logp_sum(a: Tensor, v: Tensor, ws: Workspace | None = None) -> Tensor:
    """Σ_i log B(v_i | σ(a_i)) over the last axis for binary v (broadcasts like ``a * v``).

    Exact to rounding; see the module docstring for the formula. Differentiable (out of place) when
    autograd records.
    """
    if torch.is_grad_enabled() and (a.requires_grad or v.requires_grad):
        return -F.softplus(torch.addcmul(a, a, v, value=-2.0)).sum(-1)
    z = torch.addcmul(a, a, v, value=-2.0, out=_buf(ws, "zeta", tuple(a.shape), a))  # ζ = (1 − 2v) a
    if z.device.type != "cpu" or float(z.amax()) > _EXP_SAFE:
        return F.softplus(z).sum(-1).neg_()  # GPUs fuse it; on CPUs the rare overflow-safe path
    return z.exp_().add_(1.0).log_().sum(-1).neg_()


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return precision


class Products:
    """The matrix products of a pass: logits ``h Wᵀ + b`` and gradients ``rᵀ h``, fp32 or bf16.

    One instance per pass (it caches bf16 copies of the weights and of inputs used twice).
    """

    def __init__(self, model, precision: str = "fp32") -> None:
        self.model = model
        self.bf16 = check_precision(precision) == "bf16"
        self._w16: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}
        self._h16: dict[tuple, Tensor] = {}

    def _big(self, m: int, k: int, n: int) -> bool:
        return self.bf16 and m * k * n >= BF16_MIN_WORK

    def _weights16(self, kind: str, i: int) -> tuple[Tensor, Tensor]:
        key = (kind, i)
        if key not in self._w16:
            w = (self.model.p_weights if kind == "p" else self.model.q_weights)[i]
            b = (self.model.p_biases if kind == "p" else self.model.q_biases)[i]
            self._w16[key] = (w.detach().to(torch.bfloat16), b.detach().to(torch.bfloat16))
        return self._w16[key]

    def _in16(self, h: Tensor) -> Tensor:
        """A bf16 copy of an input, made once per pass for inputs used by several products."""
        key = (h.data_ptr(), tuple(h.shape), tuple(h.stride()))
        if key not in self._h16:
            self._h16[key] = h.to(torch.bfloat16)
        return self._h16[key]

    def logits(self, kind: str, l: int, h: Tensor, out: Tensor | None = None) -> Tensor:
        """Logits of p(h_{l-1} | h_l) (``kind="p"``) or q(h_l | h_{l-1}) (``"q"``) for rows h (M, n)."""
        i = l - 1
        w = (self.model.p_weights if kind == "p" else self.model.q_weights)[i]
        if self._big(h.shape[0], w.shape[1], w.shape[0]):
            w16, b16 = self._weights16(kind, i)
            res = torch.addmm(b16, self._in16(h), w16.t())
            return out.copy_(res) if out is not None else res.float()
        bias = (self.model.p_biases if kind == "p" else self.model.q_biases)[i]
        return torch.addmm(bias, h, w.t(), out=out) if out is not None else torch.addmm(bias, h, w.t())

    def grad(self, r: Tensor, h: Tensor, out: Tensor) -> Tensor:
        """``out = rᵀ h`` (a weight gradient: residuals r (M, m), inputs h (M, n) -> (m, n))."""
        if self._big(*h.shape, r.shape[1]):
            return out.copy_(r.to(torch.bfloat16).t() @ self._in16(h))
        return torch.mm(r.t(), h, out=out)


class Layout:
    """Column offsets of h_1 … h_L in a row of H."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.sizes = tuple(int(n) for n in sizes)
        self.L = len(self.sizes) - 1
        self.start = [0] * (self.L + 2)
        c = 0
        for l in range(1, self.L + 1):
            self.start[l] = c
            c += self.sizes[l]
        self.start[self.L + 1] = c
        self.width = c  # S = n_1 + … + n_L

    def cols(self, l: int) -> slice:
        """Columns of h_l (l = 1 … L)."""
        return slice(self.start[l], self.start[l + 1])

    def qcols(self, l: int) -> slice:
        """Columns of layer l ≥ 2 in a buffer aligned with H[:, n_1:] (logits of q above the first)."""
        n1 = self.sizes[1]
        return slice(self.start[l] - n1, self.start[l + 1] - n1)


@dataclass
class QPass:
    """K samples h ~ q(h | x) per point (every layer of a batch in one buffer) and what made them.

    ``H`` (N, S) the samples; ``u1`` (B, n_1) the first layer's logits (once per point) and ``s1``
    = σ(u1); ``AQ``/``SQ`` (N, S − n_1) the logits and probabilities of layers 2 … L, aligned with
    ``H[:, n_1:]``; ``log_q`` (B, K) = log q(h | x).
    """

    layout: Layout
    B: int
    K: int
    H: Tensor
    u1: Tensor
    s1: Tensor
    AQ: Tensor
    SQ: Tensor
    log_q: Tensor

    def h(self, l: int) -> Tensor:
        """h_l as (N, n_l) (a strided view of H)."""
        return self.H[:, self.layout.cols(l)]


@torch.no_grad()
def sample_q_pass(
    model, x: Tensor, K: int, generator: torch.Generator | None, prod: Products | None = None,
    ws: Workspace | None = None, u1: Tensor | None = None,
) -> QPass:  # fmt: skip
    """Draw K samples h ~ q(h | x) for every row of x (B, D), layer by layer (Algorithm 1, line 2).

    The uniforms of all layers are drawn in one call, row by row; the first layer's logits U_1 x are
    computed once per data point (or given as ``u1`` (B, n_1) by a caller that has them). log q(h | x)
    of the draws comes with them.
    """
    prod = prod or Products(model)
    B = x.shape[0]
    N = B * K
    lay = Layout(model.sizes)
    L, n1, S = lay.L, lay.sizes[1], lay.width
    H = _buf(ws, "H", (N, S), x).uniform_(generator=generator)
    if u1 is None:
        u1 = prod.logits("q", 1, x)  # (B, n1)
    s1 = torch.sigmoid(u1)
    h1 = H[:, :n1].view(B, K, n1).lt_(s1.unsqueeze(1))  # (B, K, n1), in place over its uniforms
    # log q(h_1 | x) = h_1 · u_1 − Σ softplus(u_1): one dot product per sample
    log_q = torch.bmm(h1, u1.unsqueeze(2)).squeeze(2).sub_(F.softplus(u1).sum(1, keepdim=True))
    AQ = _buf(ws, "AQ", (N, S - n1), x)
    SQ = _buf(ws, "SQ", (N, S - n1), x)
    for l in range(2, L + 1):
        u = prod.logits("q", l, H[:, lay.cols(l - 1)], out=AQ[:, lay.qcols(l)])
        H[:, lay.cols(l)].lt_(torch.sigmoid(u, out=SQ[:, lay.qcols(l)]))
    if L > 1:
        log_q += bern_logp_sum(AQ, H[:, n1:], ws).view(B, K)
    return QPass(lay, B, K, H, u1, s1, AQ, SQ, log_q)


@dataclass
class PPass:
    """log p(x, h) (B, K) of a :class:`QPass`'s samples, and the logits: ``a1`` (N, D) of p(x | h_1)
    and ``AP`` (N, S − n_L) of p(h_{l-1} | h_l), l = 2 … L, aligned with ``H[:, :S − n_L]``."""

    log_p: Tensor
    a1: Tensor
    AP: Tensor | None


@torch.no_grad()
def p_pass(model, x: Tensor, q: QPass, prod: Products | None = None, ws: Workspace | None = None) -> PPass:
    """log p(x, h) = log p(h_L) + Σ_l log p(h_{l-1} | h_l) for the samples of ``q`` (eq. 3.1).

    The logits are returned (the training step turns them into residuals in place); with a
    workspace they live in its buffers until the next pass.
    """
    prod = prod or Products(model)
    lay, B, K = q.layout, q.B, q.K
    L, D, S = lay.L, lay.sizes[0], lay.width
    N = B * K
    nL = lay.sizes[L]
    c = model.p_prior
    log_p = (q.h(L) @ c).sub_(F.softplus(c).sum()).view(B, K)  # log p(h_L)
    AP = None
    if L > 1:
        AP = _buf(ws, "AP", (N, S - nL), x)
        for l in range(2, L + 1):
            prod.logits("p", l, q.h(l), out=AP[:, lay.cols(l - 1)])
        log_p += bern_logp_sum(AP, q.H[:, : S - nL], ws).view(B, K)
    a1 = prod.logits("p", 1, q.h(1), out=_buf(ws, "a1", (N, D), x))  # (N, D): the expensive layer
    log_p += bern_logp_sum(a1.view(B, K, D), x.unsqueeze(1), ws)
    return PPass(log_p, a1, AP)


@torch.no_grad()
def log_weights_pass(
    model, x: Tensor, K: int, generator: torch.Generator | None, prod: Products | None = None,
    ws: Workspace | None = None, u1: Tensor | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(log p(x, h_k), log q(h_k | x)) for K fresh samples h_k ~ q(h | x): x (B, D) -> two (B, K)."""
    prod = prod or Products(model)
    q = sample_q_pass(model, x, K, generator, prod, ws, u1)
    return p_pass(model, x, q, prod, ws).log_p, q.log_q


@torch.no_grad()
def z2_terms_pass(
    model, n: int, n_inner: int, generator: torch.Generator | None, prod: Products | None = None,
    ws: Workspace | None = None,
) -> Tensor:  # fmt: skip
    """log of n outer terms of the Z² estimator (3.11), (n,): (x, h) ~ p ancestrally, h' ~ q(h | x).

    Each term is log mean_{h'} sqrt(p(x, h') q(h | x) / (p(x, h) q(h' | x))). The ancestral draw keeps
    the logits it sampled with, so log p(x, h) costs no second pass; q's first layer U_1 x serves
    both log q(h | x) and the inner draws.
    """
    prod = prod or Products(model)
    lay = Layout(model.sizes)
    L, D, S, n1 = lay.L, lay.sizes[0], lay.width, lay.sizes[1]
    nL = lay.sizes[L]
    ref = model.p_prior
    # (x, h) ~ p: G = [x | h_1 | … | h_L], logits AP aligned with G[:, :D + S − n_L]
    G = _buf(ws, "Gz", (n, D + S), ref).uniform_(generator=generator)

    def gcols(l: int) -> slice:  # columns of h_l in G (l = 0 is x)
        return slice(0, D) if l == 0 else slice(D + lay.start[l], D + lay.start[l + 1])

    c = model.p_prior
    hL = G[:, gcols(L)].lt_(torch.sigmoid(c))
    log_pxh = (hL @ c).sub_(F.softplus(c).sum())
    AP = _buf(ws, "APz", (n, D + S - nL), ref)
    for l in range(L, 0, -1):
        a = prod.logits("p", l, G[:, gcols(l)], out=AP[:, gcols(l - 1)])
        G[:, gcols(l - 1)].lt_(torch.sigmoid(a))
    log_pxh += bern_logp_sum(AP, G[:, : D + S - nL], ws)
    x = G[:, :D]
    # log q(h | x): logits of every layer given the p-sample below, aligned with G[:, D:]
    AQ = _buf(ws, "AQz", (n, S), ref)
    for l in range(1, L + 1):
        prod.logits("q", l, G[:, gcols(l - 1)], out=AQ[:, lay.cols(l)])
    log_q_h = bern_logp_sum(AQ, G[:, D:], ws)
    # h' ~ q(h | x), n_inner per outer sample, sharing U_1 x
    u1 = AQ[:, :n1]
    xs = x if n_inner == 1 else x.repeat_interleave(n_inner, 0)
    u1r = u1 if n_inner == 1 else u1.repeat_interleave(n_inner, 0)
    q = _q_from_u1(model, xs, u1r, generator, prod, ws)
    log_p2 = p_pass(model, xs, q, prod, ws).log_p.view(n, n_inner)
    log_q2 = q.log_q.view(n, n_inner)
    t = (log_p2 - log_q2).add_((log_q_h - log_pxh).unsqueeze(1)).mul_(0.5)
    return torch.logsumexp(t, 1) - math.log(n_inner)


@torch.no_grad()
def _q_from_u1(model, x: Tensor, u1: Tensor, generator, prod: Products, ws: Workspace | None = None) -> QPass:
    """One sample h ~ q(h | x) per row when U_1 x + d_1 (``u1``, (M, n_1)) is known already."""
    M = x.shape[0]
    lay = Layout(model.sizes)
    L, n1, S = lay.L, lay.sizes[1], lay.width
    H = _buf(ws, "H", (M, S), x).uniform_(generator=generator)
    AQ = _buf(ws, "AQ1", (M, S), x)  # layer 1 included, for one log-probability pass
    AQ[:, :n1].copy_(u1)
    SQ = _buf(ws, "SQ", (M, S - n1), x)
    s1 = torch.sigmoid(u1)
    H[:, :n1].lt_(s1)
    for l in range(2, L + 1):
        u = prod.logits("q", l, H[:, lay.cols(l - 1)], out=AQ[:, lay.cols(l)])
        H[:, lay.cols(l)].lt_(torch.sigmoid(u, out=SQ[:, lay.qcols(l)]))
    log_q = bern_logp_sum(AQ, H, ws).view(M, 1)
    return QPass(lay, M, 1, H, u1, s1, AQ[:, n1:], SQ, log_q)
