"""engine/uniform.py: ``uniform_`` (SFC64 bits seeded from a torch generator, 24-bit grid).

Three kinds of test:

* exact ones: the conversion of every one of the 2²⁴ grid words, the Bernoulli bias below 2⁻²⁴,
  bit-reproducibility from the generator's state, the fall-backs to torch's ``uniform_``;
* statistical ones on N = 2²² draws, each with a false-alarm rate of ``ALPHA`` = 10⁻⁴ for the whole
  file (Bonferroni over the :data:`N_COMPARISONS` comparisons below), each docstring saying which error
  it catches and how large it must be;
* negative controls: planted errors (a repeated block, constant low bits, a seed that does not
  advance, a slightly wrong law, correlated neighbours) that the statistics must flag. Each first
  asserts, before sampling, that the planted error's expected statistic clears the threshold with
  miss rate ≤ ``BETA`` = 10⁻⁴, then that the sample does.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from bihm_app.engine import uniform as U
from bihm_app.engine.model import make_generator
from tests.unit.stats import ALPHA, BETA, chi2_threshold, z_one_sided, z_two_sided

N = 1 << 22  # draws per statistical test: SE of the mean 1.4·10⁻⁴
M = 1 << 24  # grid points
MU = (1 - 2.0**-24) / 2  # mean and variance of k·2⁻²⁴, k uniform on {0, …, 2²⁴ − 1}
VAR = (1 - 2.0**-48) / 12
PS = (1e-3, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999)  # Bernoulli probabilities checked
# mean, variance, lag-1, cross-call, collisions, one per p: z-tests; top and low byte: χ² tests
N_COMPARISONS = 5 + len(PS) + 2
Z = z_two_sided(ALPHA, N_COMPARISONS)  # 4.49
CHI2 = chi2_threshold(255, ALPHA / N_COMPARISONS)
Z_MISS = z_one_sided(BETA)  # a planted error's expected z must exceed Z + Z_MISS


@pytest.fixture(autouse=True)
def _cpu_one_thread():
    """The fast path is the CPU's: new tensors on the CPU (also under BIHM_TEST_DEVICE=cuda), one thread."""
    n, device = torch.get_num_threads(), torch.get_default_device()
    torch.set_num_threads(1)
    torch.set_default_device("cpu")
    yield
    torch.set_num_threads(n)
    torch.set_default_device(device)


@pytest.fixture(scope="module")
def draws() -> tuple[torch.Tensor, torch.Tensor]:
    """Two consecutive calls of N draws each from one seeded CPU generator."""
    g = make_generator(20260, "cpu")
    a = U.uniform_(torch.empty(N, device="cpu"), g)
    b = U.uniform_(torch.empty(N, device="cpu"), g)
    return a, b


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32).clone()


# --- the statistics (shared by the tests and their negative controls) ---------------------------


def z_mean(u: torch.Tensor) -> float:
    """(ū − μ) / SE with the grid's exact μ and σ²."""
    return (float(u.double().mean()) - MU) / math.sqrt(VAR / u.numel())


def z_var(u: torch.Tensor) -> float:
    """(s² − σ²) / SE, SE² = (μ₄ − σ⁴) / n = 1 / (180 n) for the uniform law."""
    return (float(u.double().var()) - VAR) / math.sqrt(1 / (180 * u.numel()))


def chi2_bins(index: torch.Tensor) -> float:
    """Pearson's χ² of 256 equally likely bins (df 255)."""
    counts = torch.bincount(index, minlength=256).double()
    e = index.numel() / 256
    return float(((counts - e) ** 2).sum() / e)


def grid_index(u: torch.Tensor) -> torch.Tensor:
    """k = u·2²⁴ (exact on the grid), int64."""
    return (u.double() * M).long()


def z_lag(u: torch.Tensor, v: torch.Tensor) -> float:
    """Σ (u_i − μ)(v_i − μ) / (σ² √n): N(0, 1) for independent u_i, v_i (the products are uncorrelated
    also when v is u shifted by one)."""
    return float(((u.double() - MU) * (v.double() - MU)).sum()) / (VAR * math.sqrt(u.numel()))


def z_fraction(u: torch.Tensor, p: float) -> float:
    """(#{u < p} − n P) / √(n P (1 − P)) with P = ⌈p·2²⁴⌉·2⁻²⁴ the exact probability on the grid."""
    pf = float(torch.tensor(p, dtype=torch.float32))  # the engine compares float32 with float32
    P = math.ceil(pf * M) / M
    n = u.numel()
    return (int((u < pf).sum()) - n * P) / math.sqrt(n * P * (1 - P))


def distinct_law(n: int, m: int = M) -> tuple[float, float]:
    """Mean and standard deviation of the number of distinct values among n i.i.d. draws from m equally
    likely ones: E = m(1 − qⁿ), Var = m qⁿ(1 − qⁿ) + m(m − 1)(rⁿ − q²ⁿ), q = 1 − 1/m, r = 1 − 2/m, where
    rⁿ − q²ⁿ = q²ⁿ·expm1(n[log(1 − 2/m) − 2 log(1 − 1/m)]) and the bracket is −1/m² − 2/m³ − O(m⁻⁴)."""
    qn = math.exp(n * math.log1p(-1 / m))
    cov = qn * qn * math.expm1(n * (-1 / m**2 - 2 / m**3))
    return m * (1 - qn), math.sqrt(m * qn * (1 - qn) + m * (m - 1) * cov)


def z_distinct(u: torch.Tensor) -> float:
    """(distinct grid values − E) / SD: the birthday test (2²² draws on 2²⁴ points: E ≈ 3.71·10⁶, SD ≈ 588)."""
    seen = torch.zeros(M, dtype=torch.bool)
    seen[grid_index(u)] = True
    mean, sd = distinct_law(u.numel())
    return (int(seen.sum()) - mean) / sd


# --- exact properties ----------------------------------------------------------------------------


def test_every_grid_word_maps_exactly_below_one():
    """Each of the 2²⁴ values k of the top 24 bits, with any low byte (0, 0x5A, 0xFF), maps to exactly
    k·2⁻²⁴; the largest word 0xFFFFFFFF gives 1 − 2⁻²⁴ < 1. Catches a conversion that rounds (e.g.
    w·2⁻³² in float32 reaches 1.0 for w ≥ 2³² − 2⁷), a wrong shift or scale, signed words
    (negative values), and a grid coarser than 2⁻²⁴."""
    step = 1 << 22
    for start in range(0, M, step):
        k = np.arange(start, start + step, dtype=np.uint32)
        for low in (0x00, 0x5A, 0xFF):
            words = (k << np.uint32(8)) | np.uint32(low)
            out = np.empty(step, np.float32)
            U._words_to_unit(words, out)
            assert np.array_equal(out.astype(np.float64), k.astype(np.float64) * 2.0**-24)
    out = np.empty(1, np.float32)
    U._words_to_unit(np.array([0xFFFFFFFF], np.uint32), out)
    assert out[0] == np.float32(1 - 2.0**-24) and out[0] < 1


@functools.cache
def _grid() -> np.ndarray:
    """The image of all 2²⁴ values of the top 24 bits, (2²⁴,) float32."""
    grid = np.empty(M, np.float32)
    U._words_to_unit(np.arange(M, dtype=np.uint32) << np.uint32(8), grid)
    return grid


BIAS_PS = [0.0, 1e-7, 2.0**-24, 2.0**-20 + 2.0**-30, 1e-3, 1 / 3, 0.5, 0.7, 1 - 2.0**-24, 1 - 2e-7, 1.0]


@pytest.mark.parametrize("p", BIAS_PS)
def test_bernoulli_bias_is_below_two_to_minus_24(p):
    """With 32-bit words uniform, k = w >> 8 is uniform on {0, …, 2²⁴ − 1} (each k has 2⁸ words), so
    P(u < p) = #{grid points < p}·2⁻²⁴ = ⌈p·2²⁴⌉·2⁻²⁴, counted here over the whole grid from the
    exact conversion: the bias P − p lies in [0, 2⁻²⁴) for float32 p (0 on the grid). Catches a 23-bit
    grid (bias up to 2⁻²³), a grid shifted by half a step, and rounding up at the top."""
    pf = np.float32(p)
    below = int(np.count_nonzero(_grid() < pf))
    bias = below / M - float(pf)  # exact: both dyadic
    assert below == math.ceil(float(pf) * M)
    assert 0 <= bias < 2.0**-24


def test_same_generator_state_gives_the_same_bits_and_the_generator_advances():
    """Restoring the torch generator's state (what a checkpoint does) reproduces the draws bit for bit;
    the next call, from the advanced generator, differs. Catches a seed not taken from the generator
    (e.g. a global numpy state), or taken without advancing it (every call identical)."""
    g = make_generator(7, "cpu")
    state = g.get_state()
    a = _bits(U.uniform_(torch.empty(3, 5000), g))
    b = _bits(U.uniform_(torch.empty(3, 5000), g))
    g.set_state(state)
    assert torch.equal(_bits(U.uniform_(torch.empty(3, 5000), g)), a)
    assert torch.equal(_bits(U.uniform_(torch.empty(3, 5000), g)), b)
    assert (a != b).float().mean() > 0.99


def test_stream_does_not_depend_on_shape_chunking_or_size(monkeypatch):
    """The values are the first numel 32-bit halves of one SFC64 stream: a (B, K, n) buffer holds
    the same bits as a flat one, an odd-sized draw is a prefix of a longer one, and a smaller chunk
    changes nothing. Catches reseeding or dropping half-words at chunk boundaries (results that
    change with U.CHUNK) and shape-dependent orders."""
    n = 3 * U.CHUNK + 4321  # odd, several chunks
    flat = _bits(U.uniform_(torch.empty(n), make_generator(11, "cpu")))
    shaped = _bits(U.uniform_(torch.empty(1, 3, n // 3), make_generator(11, "cpu"))).reshape(-1)
    assert torch.equal(shaped, flat[: shaped.numel()])
    longer = _bits(U.uniform_(torch.empty(n + 1), make_generator(11, "cpu")))
    assert torch.equal(longer[:n], flat)
    monkeypatch.setattr(U, "CHUNK", 1 << 10)
    assert torch.equal(_bits(U.uniform_(torch.empty(n), make_generator(11, "cpu"))), flat)


def test_generator_advances_by_the_same_amount_whatever_the_size():
    """One call consumes one fixed draw from the torch generator (four 64-bit words), so what follows
    does not depend on the buffer's size. Catches a seed draw that scales with the size."""
    g1, g2 = make_generator(5, "cpu"), make_generator(5, "cpu")
    U.uniform_(torch.empty(10_000), g1)
    U.uniform_(torch.empty(1_000_000), g2)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_none_means_the_default_generator():
    """generator=None draws the seed from torch.default_generator: torch.manual_seed reproduces it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        a = _bits(U.uniform_(torch.empty(20_000), None))
        torch.manual_seed(123)
        b = _bits(U.uniform_(torch.empty(20_000), None))
        c = _bits(U.uniform_(torch.empty(20_000), torch.default_generator))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.empty(20_000, dtype=torch.float64),
        lambda: torch.empty(200, 200)[:, ::2],  # non-contiguous
        lambda: torch.empty(U.MIN_NUMEL - 1),  # below the size where the fast path pays
        lambda: torch.empty(0),
        lambda: torch.empty(4, 0, 3),
        lambda: torch.empty(20_000, dtype=torch.bfloat16),
    ],
    ids=["float64", "non-contiguous", "tiny", "empty", "empty-3d", "bfloat16"],
)
def test_fall_backs_are_torchs_uniform(make):
    """What the fast path does not cover gets exactly ``buf.uniform_(generator=generator)``."""
    state = make_generator(9, "cpu").get_state()
    g, g_ref = torch.Generator().set_state(state), torch.Generator().set_state(state)
    buf = make()
    assert U.uniform_(buf, g) is buf
    assert torch.equal(buf, make().uniform_(generator=g_ref))
    assert torch.equal(g.get_state(), g_ref.get_state())


def test_fast_path_is_taken_and_writes_in_place():
    """A float32 CPU buffer of ≥ MIN_NUMEL elements is filled in place by the SFC64 path (its values
    differ from torch's stream from the same state) and its autograd version advances."""
    state = make_generator(9, "cpu").get_state()
    buf = torch.empty(U.MIN_NUMEL)
    v = buf._version
    out = U.uniform_(buf, torch.Generator().set_state(state))
    assert out is buf and buf._version > v
    ref = torch.empty(U.MIN_NUMEL).uniform_(generator=torch.Generator().set_state(state))
    assert (buf != ref).float().mean() > 0.99


def test_overwriting_a_tensor_saved_for_backward_is_detected():
    """The fast path writes through numpy, which autograd cannot see: bumping the version counter
    makes backward through an op that saved the buffer fail loudly instead of using the new values."""
    x = torch.ones(U.MIN_NUMEL, requires_grad=True)
    buf = torch.rand(U.MIN_NUMEL)
    y = (x * buf).sum()  # mul saves buf for x's gradient
    U.uniform_(buf, make_generator(1, "cpu"))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_a_leaf_that_requires_grad_gets_torchs_error():
    """A leaf that requires grad takes torch's path and its error, as ``Tensor.uniform_`` would."""
    with pytest.raises(RuntimeError, match="leaf Variable"):
        U.uniform_(torch.empty(U.MIN_NUMEL, requires_grad=True), make_generator(1, "cpu"))


# --- statistical properties of the draws ---------------------------------------------------------


def test_values_lie_on_the_grid_in_zero_one(draws):
    """Every draw is k·2⁻²⁴ with 0 ≤ k < 2²⁴: never negative, never 1.0, never between grid points."""
    for u in draws:
        assert u.dtype == torch.float32
        assert float(u.min()) >= 0 and float(u.max()) < 1
        assert torch.equal(u.double() * M, (u.double() * M).floor())


def test_mean_and_variance_match_the_uniform_law(draws):
    """|z| < Z for the mean and the variance of 2²² draws. Catches a mean off by ≥ 1.2·10⁻³ (e.g.
    u + 2⁻¹⁰, a scale off by 0.25 %) and a variance off by ≥ 3.0·10⁻⁴ (3.6 % of 1/12), each with
    miss rate ≤ 10⁻⁴ ((Z + z_β)·SE)."""
    u = draws[0]
    assert abs(z_mean(u)) < Z, z_mean(u)
    assert abs(z_var(u)) < Z, z_var(u)


def test_top_and_low_bytes_are_uniform(draws):
    """χ² of the top 8 bits of k (256 bins of u) and of its low 8 bits (u·2¹⁶ mod 1) below the
    threshold (df 255). Catches non-uniform leading bits (half the bins 0.8 % too likely, half 0.8 %
    too unlikely: λ = n·0.008² clears the threshold with miss rate ≤ 10⁻⁴) and stuck or biased low
    bits (the part of the float a coarse generator leaves constant)."""
    k = grid_index(draws[0])
    assert chi2_bins(k >> 16) < CHI2
    assert chi2_bins(k & 255) < CHI2


def test_neighbours_and_consecutive_calls_are_uncorrelated(draws):
    """Lag-1 correlation within a call (neighbours come from the two halves of one 64-bit word, or
    from adjacent words, or straddle a chunk boundary) and correlation between two consecutive calls
    element by element: |z| < Z. Catches a correlation ≥ 4.0·10⁻³ either way (e.g. one value in 250
    copying its neighbour) and a next call that replays or overlaps the previous one."""
    a, b = draws
    assert abs(z_lag(a[:-1], a[1:])) < Z
    assert abs(z_lag(a, b)) < Z


@pytest.mark.parametrize("p", PS)
def test_bernoulli_fractions_match(draws, p):
    """The fraction of u < p (the engine's Bernoulli draw) against the exact grid probability:
    |z| < Z. Catches a Bernoulli probability off by ≥ 8.2·√(p(1−p)/2²²) (2.0·10⁻³ at p = ½, 1.3·10⁻⁴ at
    p = 10⁻³); smaller biases, down to 2⁻²⁴, are excluded exactly by the grid tests above."""
    assert abs(z_fraction(draws[0], p)) < Z


def test_birthday_collisions_match(draws):
    """The number of distinct grid values among 2²² draws against its exact law (E ≈ 3.71·10⁶,
    SD ≈ 588): |z| < Z. Catches repeats in the stream: a block of ≥ 6,200 values replayed (e.g. a
    chunk reseeded to the same state; see the control below), short periods, and values confined to a sub-grid."""
    assert abs(z_distinct(draws[0])) < Z


# --- negative controls: the statistics flag planted errors ----------------------------------------


def test_control_a_repeated_block_is_caught(draws):
    """Replaying a block of L = 8192 draws in place of fresh ones: a copy is never a new value, and the
    value it displaced would have been one that none of the other N − L draws hit, with probability
    q^(N−L) ≈ e^(−1/4), so E[distinct] drops by ≈ L·q^(N−L) ≈ 6,380 = 10.8 SD (a block of ≥ 6,200 is
    caught with miss rate ≤ 10⁻⁴). Neither the mean nor the χ² tests see it; the birthday test does."""
    L, at = 8192, N // 2
    mean, sd = distinct_law(N)
    drop = L * math.exp((N - L) * math.log1p(-1 / M))
    assert drop / sd > Z + Z_MISS
    bad = draws[0].clone()
    bad[at : at + L] = bad[:L]
    assert z_distinct(bad) < -Z


def test_control_constant_low_bits_are_caught(draws):
    """A generator with only 16 random bits (low 8 of the 24 constant): the low-byte χ² is ≈ 255·n
    and only 2¹⁶ distinct values remain; the top-byte χ² and the mean do not notice."""
    bad = torch.floor(draws[0].double() * 2**16).div(2**16).float()
    k = grid_index(bad)
    assert chi2_bins(k & 255) > CHI2
    assert z_distinct(bad) < -Z


def test_control_a_seed_that_does_not_advance_is_caught(draws):
    """Two calls returning the same stream (the generator not advanced): the cross-call z is √n ≈ 2048."""
    a = draws[0]
    assert z_lag(a, a.clone()) > Z


def test_control_correlated_neighbours_are_caught(draws):
    """Each odd draw replaced by its left neighbour with probability 2 %: lag-1 correlation ≈ 1 %,
    expected z ≈ 0.01·√n ≈ 20."""
    a = draws[0].clone()
    g = make_generator(3, "cpu")
    copy = torch.rand(N // 2, generator=g) < 0.02
    a[1::2] = torch.where(copy, a[0::2], a[1::2])
    assert 0.01 * math.sqrt(N) > Z + Z_MISS
    assert z_lag(a[:-1], a[1:]) > Z


def test_control_a_slightly_wrong_law_is_caught(draws):
    """u ↦ u^1.01 (a law 1 % off in the exponent): P(u < ½) shifts by 3.5·10⁻³ (z ≈ 14) and the mean
    by 2.5·10⁻³ (z ≈ 17)."""
    bad = draws[0].double().pow(1.01).float()
    shift = 0.5 ** (1 / 1.01) - 0.5
    assert shift / math.sqrt(0.25 / N) > Z + Z_MISS
    assert abs(z_fraction(bad, 0.5)) > Z
    assert abs(z_mean(bad)) > Z
