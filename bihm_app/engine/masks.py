"""Inpainting masks: which visible units are *missing* (to be completed by the chain).

Every mask is a bool tensor (D,) with True where the pixel is missing; ``known = ~missing`` is what
:func:`bihm_app.engine.gibbs.inpaint` takes (it moves the mask to the model's device). Image masks
need the image shape (H, W) (row-major pixels); for data without one, only ``bottom``/``top`` (the
second/first half of the vector) and ``random:F`` make sense. Loading a PNG mask is the CLI's
business: it hands over a bool tensor.

Masks are built on the CPU whatever torch's default device, so that ``random:F`` with a seed names
the same pixels on every machine (a CUDA generator draws another permutation); pass ``device`` to
get the mask where the model is.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The named masks :func:`mask_from_spec` understands (plus ``random:F``).
MASK_NAMES = ("bottom", "top", "left", "right", "centre")

_CPU = torch.device("cpu")


def half_mask(side: str, n_visible: int, image_shape: tuple[int, int] | None) -> Tensor:
    """The bottom, top, left or right half of the image missing, (D,) bool.

    Without an image shape, ``bottom``/``top`` are the second/first half of the vector.
    """
    if image_shape is None:
        if side not in ("bottom", "top"):
            raise ValueError(f"mask {side!r} needs image data; for vectors use bottom, top or random:F")
        m = torch.zeros(n_visible, dtype=torch.bool, device=_CPU)
        half = n_visible // 2
        if side == "bottom":
            m[half:] = True
        else:
            m[:half] = True
        return m
    H, W = _check_shape(n_visible, image_shape)
    m = torch.zeros(H, W, dtype=torch.bool, device=_CPU)
    if side == "bottom":
        m[H // 2 :, :] = True
    elif side == "top":
        m[: H // 2, :] = True
    elif side == "left":
        m[:, : W // 2] = True
    elif side == "right":
        m[:, W // 2 :] = True
    else:
        raise ValueError(f"unknown side {side!r} (use bottom, top, left or right)")
    return m.flatten()


def centre_mask(n_visible: int, image_shape: tuple[int, int] | None) -> Tensor:
    """A centred square of half the image's height and width missing, (D,) bool."""
    if image_shape is None:
        raise ValueError("mask 'centre' needs image data; for vectors use bottom, top or random:F")
    H, W = _check_shape(n_visible, image_shape)
    m = torch.zeros(H, W, dtype=torch.bool, device=_CPU)
    h, w = max(1, H // 2), max(1, W // 2)
    r, c = (H - h) // 2, (W - w) // 2
    m[r : r + h, c : c + w] = True
    return m.flatten()


def random_mask(n_visible: int, fraction: float, seed: int = 0) -> Tensor:
    """round(fraction · D) pixels, chosen uniformly at random with ``seed``, missing; (D,) bool.

    Drawn by a CPU generator on the CPU: the same seed gives the same mask on every device."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"random mask fraction must lie in [0, 1], got {fraction}")
    g = torch.Generator(device=_CPU)
    g.manual_seed(int(seed))
    k = int(round(fraction * n_visible))
    m = torch.zeros(n_visible, dtype=torch.bool, device=_CPU)
    m[torch.randperm(n_visible, generator=g, device=_CPU)[:k]] = True
    return m


def mask_from_spec(
    spec: str, n_visible: int, image_shape: tuple[int, int] | None, seed: int = 0, device: torch.device | str | None = None
) -> Tensor:
    """``bottom|top|left|right|centre|center|random[:F]`` -> the missing-pixel mask (D,) bool, on
    the CPU (the same mask on every machine) or on ``device``.

    Raises ValueError with one line for an unknown spec or a bad fraction.
    """
    try:
        name, fraction = parse_mask_spec(spec)
    except ValueError as exc:
        raise ValueError(f"mask {spec!r}: {exc} (use {MASK_FORMS})") from None
    if name == "random":
        m = random_mask(n_visible, fraction, seed)
    elif name == "centre":
        m = centre_mask(n_visible, image_shape)
    else:
        m = half_mask(name, n_visible, image_shape)
    return m if device is None else m.to(device)


#: The mask specs :func:`parse_mask_spec` reads, for messages.
MASK_FORMS = "bottom, top, left, right, centre, random, random:F with F from 0 to 1 (e.g. random:0.25)"


def parse_mask_spec(spec: str) -> tuple[str, float]:
    """A mask spec's part (``bottom``, ``top``, ``left``, ``right``, ``centre`` or ``random``) and
    the fraction of pixels ``random`` hides (0.5 without one), without building the mask: case and
    surrounding spaces do not matter, ``center`` is ``centre``.

    Raises ValueError (a phrase, the spec not quoted) for anything else — ``random:`` with an empty,
    non-numeric ("1_0", which float() reads as 10), non-finite or out-of-range fraction, and a name
    with anything after it (``randomly``, ``random_0.3:0.3``)."""
    s = spec.strip().lower()
    if s in ("bottom", "top", "left", "right", "centre", "center", "random"):
        return ("centre" if s == "center" else s), 0.5
    name, colon, frac = s.partition(":")
    if name.strip() != "random" or not colon:
        raise ValueError("unknown mask")
    frac = frac.strip()
    if not frac:
        raise ValueError("the fraction after 'random:' is empty")
    try:
        f = float(frac.replace("_", "!"))
    except ValueError:
        f = math.nan
    if not (math.isfinite(f) and 0.0 <= f <= 1.0):
        raise ValueError("the fraction after 'random:' must be a number from 0 to 1")
    return "random", f


def _check_shape(n_visible: int, image_shape: tuple[int, int]) -> tuple[int, int]:
    H, W = (int(v) for v in image_shape)
    if H * W != n_visible:
        raise ValueError(f"image shape {H}x{W} does not match {n_visible} visible units")
    return H, W
