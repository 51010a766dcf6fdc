"""Cheaper uniform random numbers on CPUs: :func:`uniform_` fills a float32 tensor with U[0, 1)
draws about twice as fast as ``Tensor.uniform_`` (torch's CPU generator, mt19937, costs about
3.5 ns per float32; see ``benchmarks/bench_uniform.py``).

How: the bits come from numpy's SFC64 (Small Fast Chaotic, 64-bit output; ``random_raw`` writes
64 random bits in about 2 ns), and three vectorised passes turn each 32-bit half into a float:

    u = (w >> 8) · 2⁻²⁴,   w a uniform 32-bit word,

the same 24-bit grid {k · 2⁻²⁴ : 0 ≤ k < 2²⁴} that torch's own float32 ``uniform_`` uses. Every
value is exact in float32, 0 ≤ u ≤ 1 − 2⁻²⁴ < 1, and each grid point has probability exactly 2⁻²⁴.
The work runs in chunks of :data:`CHUNK` floats, so the raw words stay in the cache between the
passes and their memory is reused from chunk to chunk (no page faults).

Bernoulli draws (how the engine uses these numbers: ``u < p``) are biased upwards by less than
2⁻²⁴: for p ∈ [0, 1],

    P(u < p) = #{k : k · 2⁻²⁴ < p} · 2⁻²⁴ = ⌈p · 2²⁴⌉ · 2⁻²⁴ ∈ [p, p + 2⁻²⁴),

so the bias ⌈p · 2²⁴⌉ · 2⁻²⁴ − p is 0 when p is on the grid and below 2⁻²⁴ ≈ 6·10⁻⁸ otherwise
(torch's ``uniform_`` has the same bias).

Reproducibility: each call draws four 64-bit words from the torch generator (one small draw, so
the generator advances by a fixed amount whatever the buffer's size) and sets the SFC64 state
(a, b, c, counter) to them; the buffer then holds the first ``numel`` 32-bit halves of that SFC64
stream (low half of each 64-bit word first, on little-endian CPUs). Saving and restoring the torch generator's state (as
checkpoints do) therefore reproduces every draw bit for bit, and consecutive calls differ. With
``generator=None`` the words come from ``torch.default_generator`` (so ``torch.manual_seed``
reproduces them). The SFC64 object is reused per thread (setting a state costs ~2 µs, building
one ~10 µs); calls from several threads do not share it.

Falls back to ``buf.uniform_(generator=generator)`` (torch's generator, torch's stream) for what
the fast path does not cover: other dtypes than float32, non-contiguous or non-CPU tensors, a
non-CPU generator, tensors that require grad, and buffers below :data:`MIN_NUMEL` elements, where
the fixed cost of a call (~10 µs: the seed draw, setting the state, a handful of numpy calls) loses
(measured break-even ≈ 5,000 elements).

The fast path writes through a numpy view of the buffer and then bumps the tensor's autograd version
counter, so a buffer that autograd saved for a backward pass is still caught when overwritten.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

#: Below this many elements ``uniform_`` uses torch's generator (the fixed cost of the fast path loses).
MIN_NUMEL = 1 << 13
#: Floats converted per chunk: raw words (CHUNK·4 bytes) and their passes stay in the L2 cache.
CHUNK = 1 << 16

_SHIFT = np.uint32(8)  # keep the top 24 of 32 bits
_SCALE = np.float32(2.0**-24)
_local = threading.local()


def _increment_version(t: Tensor) -> None:
    """Tell autograd that ``t`` changed in place (the fast path writes through numpy)."""
    bump = getattr(torch.autograd.graph, "increment_version", None)
    if bump is not None:
        bump(t)


def _sfc64(generator: torch.Generator) -> np.random.SFC64:
    """This thread's SFC64, its state (a, b, c, counter) set from four 64-bit words drawn from
    ``generator`` (a full-range draw: every state word is uniform over 2⁶⁴ values)."""
    bg = getattr(_local, "sfc64", None)
    if bg is None:
        bg = _local.sfc64 = np.random.SFC64(0)
        _local.words = torch.empty(4, dtype=torch.int64)
        _local.state = {"bit_generator": "SFC64", "state": {"state": _local.words.numpy().view(np.uint64)},
                        "has_uint32": 0, "uinteger": 0}  # fmt: skip
    _local.words.random_(-(2**63), None, generator=generator)  # the dict's array sees the new words
    bg.state = _local.state
    return bg


def _words_to_unit(words: np.ndarray, out: np.ndarray) -> None:
    """out ← (words >> 8) · 2⁻²⁴ for uint32 ``words`` (m,) into float32 ``out`` (m,); ``words`` is
    overwritten. Both steps are exact (k = words >> 8 < 2²⁴ is a float32 integer; the scale is a
    power of two), so the map is w ↦ ⌊w / 2⁸⌋ · 2⁻²⁴ exactly and never reaches 1."""
    np.right_shift(words, _SHIFT, out=words)  # k ∈ [0, 2²⁴)
    np.copyto(out, words.view(np.int32), casting="unsafe")  # int32 → float32 (the fast conversion)
    np.multiply(out, _SCALE, out=out)


def _fast_path(buf: Tensor, generator: torch.Generator) -> bool:
    return (
        buf.dtype == torch.float32
        and buf.device.type == "cpu"
        and generator.device.type == "cpu"
        and buf.numel() >= MIN_NUMEL
        and buf.is_contiguous()
        and not buf.requires_grad
    )


def uniform_(buf: Tensor, generator: torch.Generator | None) -> Tensor:
    """Fill ``buf`` (any shape) with independent U[0, 1) draws in place and return it.

    float32, contiguous CPU tensors of at least :data:`MIN_NUMEL` elements take the SFC64 path
    (see the module docstring: 24-bit grid, bit-reproducible from ``generator``'s state, which
    advances by one four-word draw per call); everything else is ``buf.uniform_(generator=generator)``.
    ``generator=None`` means ``torch.default_generator`` on the fast path.
    """
    gen = torch.default_generator if generator is None else generator
    if not _fast_path(buf, gen):
        return buf.uniform_(generator=generator)
    bg = _sfc64(gen)
    out = buf.numpy().reshape(-1)  # (numel,) float32, shares buf's memory
    n = out.shape[0]
    for start in range(0, n, CHUNK):  # CHUNK is even: the stream does not depend on it
        m = min(CHUNK, n - start)
        words = bg.random_raw((m + 1) // 2).view(np.uint32)[:m]  # (m,) uniform 32-bit words
        _words_to_unit(words, out[start : start + m])
    _increment_version(buf)
    return buf
