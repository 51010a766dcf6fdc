"""The engine's hot loops: passes through all layers with one sample buffer per pass.

The samples of every latent layer of one batch live in one buffer H, and so do the logits of the
layers (A_q, A_p), aligned unit for unit with the samples they predict. The element-wise work of
all layers is then a few passes over whole buffers instead of a dozen small ones per layer, and a
pass draws its uniforms in one call. The buffers are layer-major (:class:`Blocks`): each layer's
(rows, n_l) block is contiguous, so every matrix product reads and writes whole blocks (a row-major
buffer, row r holding sample r's h_1 … h_L, made the products go through strided views and copies:
layer-major measured 1.17× an evaluation, 1.12× 2 log Z, 1.08× a Gibbs sweep and 1.085× a training
step); only the row sums of log-probabilities and the training step's row weights go block by
block. The buffers come from a :class:`Workspace`, so a training step or the chunks of an estimate
reuse the same memory.

Log-probabilities of binary v under logits a use

    log B(v | σ(a)) = Σ_i −softplus(ζ_i),   ζ = (1 − 2v) a   (one fused multiply-add per element)

with softplus(ζ) = log(1 + exp ζ) computed as exp, add, log in place (cheaper than torch's softplus
kernel on CPUs); a row whose sum came out infinite (some ζ > 88.7, where exp overflows float32) is
recomputed with the softplus kernel (a check of the (rows,) result, not another pass over the buffer).
Passes that need the logits only for this sum form ζ over them (``recompute=``: one buffer fewer to
stream through the cache, 7 % of an evaluation) and recompute them for that rare fallback.

Shapes: B data points, K samples each, N = B·K rows (samples of a point contiguous); layer sizes
``sizes = (D, n_1, …, n_L)``; ``Blocks(H, N, sizes, 1, L)[l]`` is h_l's (N, n_l) block of H.

Everything here runs without autograd (samples are held fixed; gradients are closed-form).

Precision: :class:`Products` runs the matrix products in fp32 or, with ``precision="bf16"``, the
large ones (≥ :data:`BF16_MIN_WORK` multiply-adds, where bf16 matrix units pay for the casts) in
bf16: the fp32 parameters stay the master copy, bf16 copies are made once per pass, products
accumulate in fp32 inside the matrix unit and are rounded once to bf16, the bias is added in fp32
(cheaper than bf16's broadcast accumulate, and one rounding fewer), and every log-probability and
sum is fp32. Binary samples are exact in bf16.

Exact int8 products (fp32 accuracy, for passes with fixed weights: the estimators and the sampler):
the input of almost every product is a binary sample h, exact in uint8. Split each fp32 weight row
into three int8 terms, w ≈ s (I₁ + I₂/254 + I₃/254²) with s = max_j |w_j| / 127 (:func:`split_int8`;
the remainder is at most 6.1·10⁻⁸ max_j |w_j|, the size of fp32's own rounding of the largest weight),
and h Wᵀ = Σ_t s_t ⊙ (h I_tᵀ) is three integer products, exact in int32, each scaled and summed in
fp32. On CPUs with AMX-INT8 matrix units (:func:`int8_products_available`) one integer product runs
~13× faster than an fp32 product, so the three run ~3× faster than fp32, and the bias comes free
with the first. The weights are split and packed once while they stay the same (a changed parameter is seen by its
version counter and packed again).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from bihm_app.engine.uniform import uniform_

PRECISIONS = ("fp32", "bf16")
#: Products smaller than this (multiply-adds) stay in fp32 under ``precision="bf16"``.
BF16_MIN_WORK = 1 << 24
#: Products of binary inputs with at least this many multiply-adds take the exact int8 path (when on);
#: below it the three integer products' fixed cost (~35 µs each) loses to one fp32 product.
INT8_MIN_WORK = 1 << 24
#: int8 terms per weight and the ratio of successive scales (the remainder of term t, at most ½ in
#: units of s_t, is at most 127 in units of s_t / 254: it fits the next int8 term).
INT8_TERMS = 3
INT8_STEP = 254.0


class Workspace:
    """Named scratch buffers reused from call to call (a training step, the chunks of an estimate):
    after the first use a pass allocates almost nothing, so the allocator neither returns pages to
    the OS nor faults them back in (measured: a fifth of a paper12 step on a CPU)."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}
        self._views: dict[tuple, Tensor] = {}  # (name, shape) -> the view last returned
        self._blocks: dict[tuple, "Blocks"] = {}
        self.memo: dict = {}  # what callers derive from the buffers (views by parameter name)

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """A buffer of this shape (contents undefined), reusing the storage of an earlier call.

        The same shape gets the same view object again (a step makes ~30 of them: views cost ~1 µs
        each); callers must not change a view's shape in place (``resize_``, a mismatched ``out=``)."""
        key = (name, shape)
        view = self._views.get(key)
        if view is not None and view.dtype == dtype and view.device == device:
            return view
        if len(self._views) > 512:  # many shapes (a sampler's varying chains): start again
            self._views.clear()
        n = math.prod(shape)
        buf = self._bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype, device=device)
            self._bufs[name] = buf
            self._views = {k: v for k, v in self._views.items() if k[0] != name}  # views of the old storage
        view = self._views[key] = buf[:n].view(shape)
        return view

    @contextmanager
    def fixed_weights(self) -> Iterator["Workspace"]:
        """A scope in which the model's weights do not change (the chunks of one estimate): the
        packed int8 weights are checked against the parameters (versions and fingerprint, ~0.4 ms
        for paper12's six large weights) once for every pass that uses this workspace, not once per
        pass (a few % of an evaluation, 2 log Z or a Gibbs sweep). Re-entrant: an inner scope
        keeps the outer one's checks."""
        if "int8" in self.memo:
            yield self
            return
        self.memo["int8"] = {}
        try:
            yield self
        finally:
            del self.memo["int8"]

    def blocks(self, name: str, N: int, sizes: tuple[int, ...], first: int, last: int, like: Tensor) -> "Blocks":
        """:class:`Blocks` over the buffer ``name``, the same object (its views made once) while that
        buffer keeps its storage."""
        buf = self.get(name, (N * sum(sizes[first : last + 1]),), like.dtype, like.device)
        key = (name, N, sizes, first, last)
        blk = self._blocks.get(key)
        if blk is None or blk.buf is not buf:
            if len(self._blocks) > 64:
                self._blocks.clear()
            blk = self._blocks[key] = Blocks(buf, N, sizes, first, last)
        return blk


def _buf(ws: Workspace | None, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    if ws is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    return ws.get(name, shape, like.dtype, like.device)


def bern_logp_sum(
    a: Tensor, v: Tensor, ws: Workspace | None = None, recompute: Callable[[], Tensor] | None = None,
    rows: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:  # fmt: skip
    """Σ_i log B(v_i | σ(a_i)) over the last axis for binary v (broadcasts like ``a * v``).

    Exact to rounding; see the module docstring for the formula. Differentiable (out of place) when
    autograd records. ``recompute``: a function that returns the same logits again; then ``a`` is
    overwritten (ζ is formed over it) and the function is called only if exp overflowed. ``rows``:
    how to sum the terms row by row when a and v are flat layer-major spans (:meth:`Blocks.row_sums`).
    """
    rows = rows or (lambda t: t.sum(-1))
    if torch.is_grad_enabled() and (a.requires_grad or v.requires_grad):
        return -rows(F.softplus(torch.addcmul(a, a, v, value=-2.0)))
    zeta = a if recompute is not None else _buf(ws, "zeta", tuple(a.shape), a)
    z = torch.addcmul(a, a, v, value=-2.0, out=zeta)  # ζ = (1 − 2v) a
    if z.device.type != "cpu":
        return rows(F.softplus(z)).neg_()  # GPUs fuse it
    out = rows(z.exp_().add_(1.0).log_()).neg_()
    if bool(torch.isinf(out).any()):  # some ζ > 88.7 overflowed exp (rare): the softplus kernel
        a = recompute() if recompute is not None else a
        return rows(F.softplus(torch.addcmul(a, a, v, value=-2.0, out=_buf(ws, "zeta", tuple(a.shape), a)))).neg_()
    return out


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    return precision


def split_int8(w: Tensor, terms: int = INT8_TERMS) -> tuple[list[Tensor], list[Tensor]]:
    """Split a weight matrix w (m, n) into int8 terms: w ≈ Σ_t diag(s_t) I_t, I_t (m, n) int8, s_t (m,).

    s_1 = max_j |w_ij| / 127 per row, s_{t+1} = s_t / :data:`INT8_STEP`; computed in float64, so
    |w − Σ_t s_t I_t| ≤ s_T / 2 exactly (6.1·10⁻⁸ · max_j |w_ij| for three terms). A zero row gets
    zero terms. w must be finite.
    """
    w64 = w.detach().double()
    s = w64.abs().amax(1) / 127.0
    s = torch.where(s > 0, s, torch.ones_like(s))
    r = w64 / s.unsqueeze(1)
    ints, scales = [], []
    for _ in range(terms):
        i = torch.round(r)
        ints.append(i.to(torch.int8))
        scales.append(s.float())
        r = (r - i) * INT8_STEP
        s = s / INT8_STEP
    return ints, scales


@dataclass
class Int8Weight:
    """One weight matrix split by :func:`split_int8` and packed for the matrix unit, with what it was
    made from: the bias, both version counters, and a fingerprint of the weights (their float64 sum:
    writes that bypass the version counters — torch's fused Adam kernel, numpy views, collectives —
    change it too), so a changed parameter invalidates it."""

    b: Tensor
    versions: tuple[int, int]
    packed: list[Tensor]
    scales: list[Tensor]
    zero_points: Tensor
    bias: Tensor
    fingerprint: tuple[float, float]

    def current(self, w: Tensor, b: Tensor) -> bool:
        return self.b is b and self.versions == (w._version, b._version) and self.fingerprint == _fingerprint(w, b)


def _fingerprint(w: Tensor, b: Tensor) -> tuple[float, float]:
    """Float64 sums of w and b (~15 µs for 784×300): equal after a real update only by accident."""
    return float(w.detach().sum(dtype=torch.float64)), float(b.detach().sum(dtype=torch.float64))


#: Packed weights by weight tensor (weak keys: they go with the model). Weights that stay fixed —
#: an evaluation, a sampler, repeated estimates between training steps — are split and packed once.
_PACKED = WeakIdKeyDictionary()  # Tensor -> Int8Weight (by identity: tensors compare element-wise)


def _qlinear_sum(x8: Tensor, packed: Tensor, scales: Tensor, zero_points: Tensor, acc: Tensor, bias: Tensor | None) -> Tensor:
    """acc += (x8 ·ᵢₙₜ packedᵀ) ⊙ scales (+ bias): one int8 product with int32 accumulation, fp32 out."""
    return torch.ops.onednn.qlinear_pointwise.binary(
        x8, 1.0, 0, packed, scales, zero_points, acc, bias, 1.0, 0, torch.float32, 1.0, 0, "sum", 1.0, "none", [], ""
    )


def pack_int8(w: Tensor, b: Tensor) -> Int8Weight | None:
    """The exact-int8 form of the weights ``w`` (m, n) and bias ``b`` (m,); None if w is not finite
    (a NaN must stay a NaN: the fp32 product propagates it)."""
    if not bool(torch.isfinite(w).all()):
        return None
    ints, scales = split_int8(w)
    packed = [torch.ops.onednn.qlinear_prepack(i, None) for i in ints]
    zp = torch.zeros(w.shape[0], dtype=torch.int64, device=w.device)
    return Int8Weight(b, (w._version, b._version), packed, scales, zp, b.detach().float().contiguous(), _fingerprint(w, b))


def int8_logits(
    pk: Int8Weight, h: Tensor, out: Tensor | None = None, h8: Tensor | None = None, scratch: Tensor | None = None
) -> Tensor:
    """``h Wᵀ + b`` for binary h (M, n) from the packed terms: out (M, m) fp32 (a contiguous ``out``
    is written in place, another one gets a copy). ``h8``: h as uint8 if the caller has it;
    ``scratch``: a contiguous (M, m) buffer to accumulate in for a strided ``out`` (a fresh one each
    time costs page faults: measured 3× the time of the product it holds)."""
    x8 = h8 if h8 is not None else h.to(torch.uint8)
    if out is not None and out.is_contiguous():
        acc, first = out.zero_(), 0
    elif scratch is not None:
        acc, first = scratch.zero_(), 0
    else:  # the first term makes the buffer (no zero fill: a strided out gets a copy anyway)
        acc, first = torch.ops.onednn.qlinear_pointwise(
            x8, 1.0, 0, pk.packed[0], pk.scales[0], pk.zero_points, pk.bias, 1.0, 0, torch.float32, "none", [], ""
        ), 1  # fmt: skip
    for t in range(first, len(pk.packed)):
        res = _qlinear_sum(x8, pk.packed[t], pk.scales[t], pk.zero_points, acc, pk.bias if t == 0 else None)
        if res.data_ptr() != acc.data_ptr():  # not accumulated in place: never seen, but keep it right
            acc.copy_(res)
    if out is not None and acc is not out:
        out.copy_(acc)
    return out if out is not None else acc


_INT8: dict[str, bool] = {}


def _int8_self_test() -> bool:
    """The int8 product reproduces a float64 product to fp32 accuracy on a random problem."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g) * torch.logspace(-3, 1, 64)  # rows of many magnitudes
    b = torch.randn(96, generator=g)
    h = (torch.rand(40, 64, generator=g) < 0.4).float()
    pk = pack_int8(w, b)
    want, bound = want_int8_bound(h, w, b)
    return bool(((int8_logits(pk, h).double() - want).abs() <= bound).all())


def want_int8_bound(h: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """(h Wᵀ + b in float64, the bound on an exact-int8 product's error): the split's remainder,
    ≤ max_j |w_ij| / (2·127·254²) per weight times the active inputs, plus fp32 rounding of the
    scaled terms and their sums (a few units of 2⁻²⁴ of Σ_j |h_j w_ij| + |b_i|)."""
    h64, w64, b64 = h.double(), w.double(), b.double()
    split = (h64.sum(1, keepdim=True) * w64.abs().amax(1) / (2 * 127 * INT8_STEP**2))
    rounding = 8 * 2.0**-24 * (h64 @ w64.abs().t() + b64.abs())
    return h64 @ w64.t() + b64, split + rounding


def int8_products_supported() -> bool:
    """The exact int8 product works here (torch's oneDNN int8 linear exists and passes a self-test)."""
    if "supported" not in _INT8:
        try:
            _INT8["supported"] = hasattr(torch.ops.onednn, "qlinear_pointwise") and _int8_self_test()
        except Exception:  # an old torch, a build without oneDNN: the fp32 products
            _INT8["supported"] = False
    return _INT8["supported"]


def int8_products_available() -> bool:
    """Use exact int8 products: supported, on a CPU with AMX-INT8 matrix units (elsewhere the three
    integer products are not faster than one fp32 product), and not switched off (``BIHM_INT8=0``)."""
    if "available" not in _INT8:
        try:
            amx = bool(torch._C._cpu._get_cpu_capability().get("amx_int8", False))
        except Exception:  # the capability query is private: when it is gone, assume none
            amx = False
        _INT8["available"] = os.environ.get("BIHM_INT8", "1") != "0" and amx and int8_products_supported()
    return _INT8["available"]


def set_int8_products(enabled: bool | None) -> None:
    """Turn the exact int8 products on or off for this process (None: back to automatic, as
    :func:`int8_products_available` decides). For A/B measurements; ``True`` where they are not
    supported raises ValueError."""
    if enabled is None:
        _INT8.pop("available", None)
    elif enabled and not int8_products_supported():
        raise ValueError("exact int8 products are not supported here (torch without oneDNN int8 linear)")
    else:
        _INT8["available"] = bool(enabled)


class Products:
    """The matrix products of a pass: logits ``h Wᵀ + b`` and gradients ``rᵀ h``, fp32 or bf16.

    One instance per pass (it caches bf16 and uint8 copies of inputs used twice). ``int8=True``
    (passes whose weights stay fixed over many products: estimators, sampler) lets logits of binary
    inputs take the exact int8 path where it is available.
    """

    def __init__(self, model, precision: str = "fp32", int8: bool = False, ws: Workspace | None = None) -> None:
        self.model = model
        self.ws = ws  # buffers for bf16 casts and uint8 inputs
        self.bf16 = check_precision(precision) == "bf16"
        self._w16: dict[tuple[str, int], Tensor] = {}
        self._h16: dict[tuple, Tensor] = {}
        self._h8: dict[tuple, Tensor] = {}
        self._i8: dict[tuple[str, int], Int8Weight | None] = {}
        self._params: tuple[tuple[Tensor, ...], ...] | None = None
        self.int8 = (
            int8 and not self.bf16 and model.p_prior.dtype == torch.float32 and model.p_prior.device.type == "cpu"
            and int8_products_available()
        )  # fmt: skip

    def _wb(self, kind: str, i: int) -> tuple[Tensor, Tensor]:
        """(weights, biases) of p's (``"p"``) or q's (``"q"``) layer i + 1; the lists are read once per
        pass (indexing a ParameterList costs ~2 µs, a pass makes ~50 products)."""
        if self._params is None:
            m = self.model
            lists = (m.p_weights, m.p_biases, m.q_weights, m.q_biases)
            self._params = tuple(tuple(pl.parameters(recurse=False)) for pl in lists)
        return (self._params[0][i], self._params[1][i]) if kind == "p" else (self._params[2][i], self._params[3][i])

    def _int8_weight(self, kind: str, i: int) -> Int8Weight | None:
        """The packed weights of the layer, checked against the parameters once per pass."""
        if (kind, i) in self._i8:
            return self._i8[(kind, i)]
        w, b = self._wb(kind, i)
        scope = self.ws.memo.get("int8") if self.ws is not None else None  # Workspace.fixed_weights
        seen = scope.get((kind, i, id(w))) if scope is not None else None
        if seen is not None and seen[0] is w:
            pk = seen[1]
        else:
            pk = _PACKED.get(w)
            if pk is None or not pk.current(w, b):
                pk = pack_int8(w, b)
                if pk is not None:
                    _PACKED[w] = pk
            if scope is not None:
                scope[(kind, i, id(w))] = (w, pk)
        self._i8[(kind, i)] = pk
        return pk

    def _in8(self, h: Tensor) -> Tensor:
        """A uint8 copy of a binary input, made once per pass (inputs feed a q and a p product), in
        the workspace's buffers when there is one (fresh memory each chunk costs page faults)."""
        key = (h.data_ptr(), tuple(h.shape), tuple(h.stride()))
        if key not in self._h8:
            if self.ws is None:
                self._h8[key] = h.to(torch.uint8)
            else:  # the passes convert the same inputs in the same order every chunk: one buffer each
                buf = self.ws.get(f"u8.{len(self._h8)}", tuple(h.shape), torch.uint8, h.device)
                self._h8[key] = buf.copy_(h)
        return self._h8[key]

    def _big(self, m: int, k: int, n: int) -> bool:
        return self.bf16 and m * k * n >= BF16_MIN_WORK

    def _weights16(self, kind: str, i: int) -> Tensor:
        key = (kind, i)
        if key not in self._w16:
            w = self._wb(kind, i)[0]
            self._w16[key] = self._cast16(w.detach(), f"w16.{kind}{i}")
        return self._w16[key]

    def _cast16(self, t: Tensor, name: str) -> Tensor:
        """A bf16 copy of t, in the workspace's buffer ``name`` when there is one (a fresh megabyte
        each training step costs page faults: measured 3× the time of the conversion itself)."""
        if self.ws is None:
            return t.to(torch.bfloat16)
        return self.ws.get(name, tuple(t.shape), torch.bfloat16, t.device).copy_(t)

    def _in16(self, h: Tensor) -> Tensor:
        """A bf16 copy of an input, made once per pass for inputs used by several products."""
        key = (h.data_ptr(), tuple(h.shape), tuple(h.stride()))
        if key not in self._h16:
            self._h16[key] = self._cast16(h, f"in16.{len(self._h16)}")
        return self._h16[key]

    def logits(self, kind: str, l: int, h: Tensor, out: Tensor | None = None, binary: bool = False) -> Tensor:
        """Logits of p(h_{l-1} | h_l) (``kind="p"``) or q(h_l | h_{l-1}) (``"q"``) for rows h (M, n).

        ``binary``: the caller guarantees h ∈ {0, 1} (a sample), which allows the exact int8 path."""
        i = l - 1
        w, bias = self._wb(kind, i)
        if binary and self.int8 and h.shape[0] * w.shape[0] * w.shape[1] >= INT8_MIN_WORK:
            try:
                pk = self._int8_weight(kind, i)
                if pk is not None:
                    return int8_logits(pk, h, out, self._in8(h))
            except RuntimeError:  # oneDNN refused this product (a shape, a build): fp32 from now on
                _INT8["available"] = self.int8 = False
        if self._big(h.shape[0], w.shape[1], w.shape[0]):
            res16 = None if self.ws is None else self.ws.get("mm16", (h.shape[0], w.shape[0]), torch.bfloat16, h.device)
            res = torch.mm(self._in16(h), self._weights16(kind, i).t(), out=res16)
            return (out.copy_(res) if out is not None else res.float()).add_(bias)
        return torch.addmm(bias, h, w.t(), out=out) if out is not None else torch.addmm(bias, h, w.t())

    def grad(self, r: Tensor, h: Tensor, out: Tensor) -> Tensor:
        """``out = rᵀ h`` (a weight gradient: residuals r (M, m), inputs h (M, n) -> (m, n))."""
        if self._big(*h.shape, r.shape[1]):
            g16 = None if self.ws is None else self.ws.get("grad16", tuple(out.shape), torch.bfloat16, out.device)
            return out.copy_(torch.mm(self._cast16(r, "r16").t(), self._in16(h), out=g16))
        return torch.mm(r.t(), h, out=out)


class Blocks:
    """Layers ``first`` … ``last`` (0 is x) of N rows in one flat buffer, layer-major: layer l is the
    contiguous (N, n_l) block ``self[l]``, the blocks one after the other. Element-wise work over
    several layers is one call on :meth:`span` (flat, aligned between buffers that hold the same
    layers); row sums go block by block (:meth:`row_sums`)."""

    def __init__(self, buf: Tensor, N: int, sizes: tuple[int, ...], first: int, last: int) -> None:
        self.buf, self.N, self.sizes, self.first, self.last = buf, N, sizes, first, last
        self.off: dict[int, int] = {}
        o = 0
        for l in range(first, last + 1):
            self.off[l] = o
            o += sizes[l]
        self.off[last + 1] = o
        self._layers = {l: self._slice(buf, l, l).view(N, sizes[l]) for l in range(first, last + 1)}
        self._spans: dict[tuple[int, int], Tensor] = {}
        self._sums: dict[tuple[int, int], Callable[[Tensor], Tensor]] = {}

    @classmethod
    def alloc(
        cls, ws: Workspace | None, name: str, N: int, sizes: tuple[int, ...], first: int, last: int, like: Tensor
    ) -> "Blocks":
        if ws is not None:
            return ws.blocks(name, N, sizes, first, last, like)
        return cls(_buf(None, name, (N * sum(sizes[first : last + 1]),), like), N, sizes, first, last)

    def _slice(self, t: Tensor, a: int, b: int) -> Tensor:
        return t[self.N * self.off[a] : self.N * self.off[b + 1]]

    def __getitem__(self, l: int) -> Tensor:
        """Layer l as a contiguous (N, n_l) block."""
        return self._layers[l]

    def span(self, a: int, b: int) -> Tensor:
        """Layers a … b together, flat."""
        view = self._spans.get((a, b))
        if view is None:
            view = self._spans[(a, b)] = self._slice(self.buf, a, b)
        return view

    def row_sums(self, a: int, b: int) -> Callable[[Tensor], Tensor]:
        """A function t ↦ (N,) sums of t's rows, t laid out like ``span(a, b)`` (the blocks' views of
        the last t are kept: the passes sum the same buffers chunk after chunk)."""
        if (a, b) in self._sums:
            return self._sums[(a, b)]
        N, sizes = self.N, self.sizes
        last: list = [None, []]  # t, its blocks

        def sums(t: Tensor) -> Tensor:
            if last[0] is not t:
                o, views = 0, []
                for l in range(a, b + 1):
                    views.append(t[N * o : N * (o + sizes[l])].view(N, sizes[l]))
                    o += sizes[l]
                last[0], last[1] = t, views
            out = None
            for v in last[1]:
                s = v.sum(1)
                out = s if out is None else out.add_(s)
            return out

        self._sums[(a, b)] = sums
        return sums


@dataclass
class QPass:
    """K samples h ~ q(h | x) per point (every layer of a batch in one buffer) and what made them.

    ``H`` the samples (:class:`Blocks` of layers 1 … L, N = B·K rows); ``u1`` (B, n_1) the first
    layer's logits (once per point) and ``s1`` = σ(u1); ``AQ``/``SQ`` the logits and probabilities of
    layers 2 … L (None where the pass used them up or did not keep them); ``log_q`` (B, K) = log q(h | x).
    """

    sizes: tuple[int, ...]
    B: int
    K: int
    H: Blocks
    u1: Tensor
    s1: Tensor
    AQ: Blocks | None
    SQ: Blocks | None
    log_q: Tensor

    def h(self, l: int) -> Tensor:
        """h_l as (N, n_l)."""
        return self.H[l]


@torch.no_grad()
def sample_q_pass(
    model, x: Tensor, K: int, generator: torch.Generator | None, prod: Products | None = None,
    ws: Workspace | None = None, u1: Tensor | None = None, keep_logits: bool = True,
) -> QPass:  # fmt: skip
    """Draw K samples h ~ q(h | x) for every row of x (B, D), layer by layer (Algorithm 1, line 2).

    The uniforms of all layers are drawn in one call; the first layer's logits U_1 x are computed
    once per data point (or given as ``u1`` (B, n_1) by a caller that has them). log q(h | x) of the
    draws comes with them. ``keep_logits=False``: ``AQ`` is used up by the log-probability (callers
    that need only ``SQ``, the samples and log q).
    """
    prod = prod or Products(model)
    B = x.shape[0]
    N = B * K
    sizes = tuple(model.sizes)
    L, n1 = len(sizes) - 1, sizes[1]
    H = Blocks.alloc(ws, "H", N, sizes, 1, L, x)
    uniform_(H.buf, generator)
    if u1 is None:
        u1 = prod.logits("q", 1, x)  # (B, n1)
    s1 = torch.sigmoid(u1)
    h1 = H[1].view(B, K, n1).lt_(s1.unsqueeze(1))  # (B, K, n1), in place over its uniforms
    # log q(h_1 | x) = h_1 · u_1 − Σ softplus(u_1): one dot product per sample
    log_q = torch.bmm(h1, u1.unsqueeze(2)).squeeze(2).sub_(F.softplus(u1).sum(1, keepdim=True))
    AQ = Blocks.alloc(ws, "AQ", N, sizes, 2, L, x)
    SQ = Blocks.alloc(ws, "SQ", N, sizes, 2, L, x)
    for l in range(2, L + 1):
        u = prod.logits("q", l, H[l - 1], out=AQ[l], binary=True)
        H[l].lt_(torch.sigmoid(u, out=SQ[l]))
    if L > 1:
        again = None if keep_logits else (lambda: _layer_logits(prod, "q", H, AQ, range(2, L + 1)))
        log_q += bern_logp_sum(AQ.span(2, L), H.span(2, L), ws, again, AQ.row_sums(2, L)).view(B, K)
    return QPass(sizes, B, K, H, u1, s1, AQ if keep_logits else None, SQ, log_q)


def _layer_logits(prod: Products, kind: str, src: Blocks, dst: Blocks, layers) -> Tensor:
    """The logits of ``layers`` from the samples in ``src`` into ``dst``: q(h_l | h_{l-1}) into dst's
    layer l, p(h_{l-1} | h_l) into its layer l − 1. Returns dst's whole span (the logits' buffer, laid
    out for :func:`bern_logp_sum`; also its overflow fallback recomputes them with this)."""
    for l in layers:
        if kind == "q":
            prod.logits("q", l, src[l - 1], out=dst[l], binary=True)
        else:
            prod.logits("p", l, src[l], out=dst[l - 1], binary=True)
    return dst.span(dst.first, dst.last)


@dataclass
class PPass:
    """log p(x, h) (B, K) of a :class:`QPass`'s samples, and the logits: ``a1`` (N, D) of p(x | h_1)
    and ``AP`` of p(h_{l-1} | h_l), l = 2 … L, as :class:`Blocks` of layers 1 … L − 1 (aligned with
    the samples of those layers; None for one latent layer)."""

    log_p: Tensor
    a1: Tensor
    AP: Blocks | None


@torch.no_grad()
def p_pass(
    model, x: Tensor, q: QPass, prod: Products | None = None, ws: Workspace | None = None, keep_logits: bool = True,
    scratch: str | None = None,
) -> PPass:  # fmt: skip
    """log p(x, h) = log p(h_L) + Σ_l log p(h_{l-1} | h_l) for the samples of ``q`` (eq. 3.1).

    The logits are returned (the training step turns them into residuals in place); with a
    workspace they live in its buffers until the next pass. ``keep_logits=False``: they are used up
    by the log-probabilities (estimators), and ``scratch`` names a workspace buffer the caller no
    longer needs, which then holds them (the layers ≥ 2 first, then the first layer's: a smaller
    working set stays in the cache; measured: 2 log Z 1.07–1.12× faster).
    """
    if scratch is not None and keep_logits:
        raise ValueError("scratch buffers hold logits that are used up: pass keep_logits=False")
    prod = prod or Products(model)
    B, K, H, sizes = q.B, q.K, q.H, q.sizes
    L, D = len(sizes) - 1, sizes[0]
    N = B * K
    c = model.p_prior
    log_p = (H[L] @ c).sub_(F.softplus(c).sum()).view(B, K)  # log p(h_L)
    AP = None
    if L > 1:
        AP = Blocks.alloc(ws, scratch or "AP", N, sizes, 1, L - 1, x)
        _layer_logits(prod, "p", H, AP, range(2, L + 1))
        again = None if keep_logits else (lambda: _layer_logits(prod, "p", H, AP, range(2, L + 1)))
        log_p += bern_logp_sum(AP.span(1, L - 1), H.span(1, L - 1), ws, again, AP.row_sums(1, L - 1)).view(B, K)
    a1 = prod.logits("p", 1, H[1], out=_buf(ws, scratch or "a1", (N, D), x), binary=True)  # (N, D): the expensive layer
    again = None if keep_logits else (lambda: prod.logits("p", 1, H[1], out=a1, binary=True).view(B, K, D))
    log_p += bern_logp_sum(a1.view(B, K, D), x.unsqueeze(1), ws, again)
    return PPass(log_p, a1, AP)


@torch.no_grad()
def log_weights_pass(
    model, x: Tensor, K: int, generator: torch.Generator | None, prod: Products | None = None,
    ws: Workspace | None = None, u1: Tensor | None = None,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(log p(x, h_k), log q(h_k | x)) for K fresh samples h_k ~ q(h | x): x (B, D) -> two (B, K)."""
    prod = prod or Products(model, int8=True, ws=ws)
    q = sample_q_pass(model, x, K, generator, prod, ws, u1, keep_logits=False)
    return p_pass(model, x, q, prod, ws, keep_logits=False, scratch="AQ").log_p, q.log_q  # q's logits are used up


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
    prod = prod or Products(model, int8=True, ws=ws)
    sizes, L = tuple(model.sizes), len(model.sizes) - 1
    ref = model.p_prior
    # (x, h) ~ p: G holds x, h_1, …, h_L; AP the logits of p(h_{l-1} | h_l), l = 1 … L
    G = Blocks.alloc(ws, "Gz", n, sizes, 0, L, ref)
    uniform_(G.buf, generator)
    c = model.p_prior
    hL = G[L].lt_(torch.sigmoid(c))
    log_pxh = (hL @ c).sub_(F.softplus(c).sum())
    AP = Blocks.alloc(ws, "APz", n, sizes, 0, L - 1, ref)
    for l in range(L, 0, -1):
        a = prod.logits("p", l, G[l], out=AP[l - 1], binary=True)
        G[l - 1].lt_(torch.sigmoid(a, out=_buf(ws, "Sz", tuple(a.shape), a)))
    again = lambda: _layer_logits(prod, "p", G, AP, range(L, 0, -1))  # noqa: E731
    log_pxh += bern_logp_sum(AP.span(0, L - 1), G.span(0, L - 1), ws, again, AP.row_sums(0, L - 1))
    x = G[0]
    # log q(h | x): logits of every layer given the p-sample below, in the buffer of p's (used up above)
    AQ = Blocks.alloc(ws, "APz", n, sizes, 1, L, ref)
    _layer_logits(prod, "q", G, AQ, range(1, L + 1))
    # h' ~ q(h | x), n_inner per outer sample, sharing U_1 x (drawn before log q(h | x) uses AQ up)
    u1 = AQ[1]
    xs = x if n_inner == 1 else x.repeat_interleave(n_inner, 0)
    u1r = u1 if n_inner == 1 else u1.repeat_interleave(n_inner, 0)
    q = _q_from_u1(model, xs, u1r, generator, prod, ws)
    again = lambda: _layer_logits(prod, "q", G, AQ, range(1, L + 1))  # noqa: E731
    log_q_h = bern_logp_sum(AQ.span(1, L), G.span(1, L), ws, again, AQ.row_sums(1, L))
    log_p2 = p_pass(model, xs, q, prod, ws, keep_logits=False, scratch="APz").log_p.view(n, n_inner)
    log_q2 = q.log_q.view(n, n_inner)
    t = (log_p2 - log_q2).add_((log_q_h - log_pxh).unsqueeze(1)).mul_(0.5)
    return torch.logsumexp(t, 1) - math.log(n_inner)


@torch.no_grad()
def _q_from_u1(model, x: Tensor, u1: Tensor, generator, prod: Products, ws: Workspace | None = None) -> QPass:
    """One sample h ~ q(h | x) per row when U_1 x + d_1 (``u1``, (M, n_1)) is known already (the
    logits are used up by log q, the probabilities not kept)."""
    M = x.shape[0]
    sizes = tuple(model.sizes)
    L = len(sizes) - 1
    H = Blocks.alloc(ws, "H", M, sizes, 1, L, x)
    uniform_(H.buf, generator)
    AQ = Blocks.alloc(ws, "AQ1", M, sizes, 1, L, x)  # layer 1 included: one log-probability pass
    AQ[1].copy_(u1)
    s1 = torch.sigmoid(u1)
    H[1].lt_(s1)
    for l in range(2, L + 1):
        u = prod.logits("q", l, H[l - 1], out=AQ[l], binary=True)
        H[l].lt_(torch.sigmoid(u, out=_buf(ws, "Sq", tuple(u.shape), x)))

    def again() -> Tensor:
        AQ[1].copy_(u1)
        return _layer_logits(prod, "q", H, AQ, range(2, L + 1)) if L > 1 else AQ.span(1, L)

    log_q = bern_logp_sum(AQ.span(1, L), H.span(1, L), ws, again, AQ.row_sums(1, L)).view(M, 1)
    return QPass(sizes, M, 1, H, u1, s1, None, None, log_q)
