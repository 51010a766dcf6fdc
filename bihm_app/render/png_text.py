"""Text in PNG pictures (charts, confusion matrices) with the thesis' p̃ drawn properly.

Pillow's default font (the one every install has) has no glyph for the combining tilde U+0303, so
"log p\u0303*(x)" came out as "log p▯*(x)" and callers wrote "log p~*(x)" instead. Here a letter
followed by U+0303 or by "~" is drawn as the letter with a tilde stroke over it, the same in every
legend, title and axis label whatever font Pillow has.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["TILDE", "png_label", "text_width", "text_height", "draw_text"]

#: Unicode's combining tilde: "p\u0303" is p̃. Pillow's default font has no glyph for it (it drew a
#: box), so PNG text draws it as a stroke over the letter before it (:func:`draw_text`).
TILDE = "\u0303"


def png_label(text: str) -> str:
    """'log p~*(x)' -> 'log p̃*(x)': a letter followed by '~' (the ASCII spelling of the thesis'
    p̃) gets a tilde over it, so every PNG label reads the same whichever spelling its caller used."""
    return re.sub(r"([A-Za-z])~", "\\1" + TILDE, text)


def _chunks(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into (chunk, tilde over it): every letter carrying a combining tilde alone."""
    out: list[tuple[str, bool]] = []
    parts = png_label(text).split(TILDE)
    for i, part in enumerate(parts):
        if i < len(parts) - 1 and part:  # a tilde follows this part: over its last character
            if part[:-1]:
                out.append((part[:-1], False))
            out.append((part[-1], True))
        elif part:
            out.append((part, False))
    return out


def text_width(draw: Any, text: str, font: Any) -> float:
    """Pixels :func:`draw_text` advances for ``text`` (a tilde over a letter takes no room)."""
    return sum(draw.textlength(chunk, font=font) for chunk, _ in _chunks(text))


def text_height(draw: Any, text: str, font: Any) -> int:
    l, t, r, b = draw.textbbox((0, 0), "".join(c for c, _ in _chunks(text)) or " ", font=font)
    return b - t


def draw_text(draw: Any, xy: tuple[float, float], text: str, fill: Any, font: Any) -> None:
    """``draw.text`` that also draws p̃: the letter, then a tilde stroke over it (font-independent)."""
    x, y = xy
    for chunk, tilde in _chunks(text):
        draw.text((x, y), chunk, fill=fill, font=font)
        w = draw.textlength(chunk, font=font)
        if tilde:
            size = float(getattr(font, "size", 11))
            top = draw.textbbox((x, y), "x", font=font)[1]  # the top of the lower-case letters
            amp = max(1.0, size / 10)
            cy = top - amp - max(1.0, size / 7)
            x0, x1 = x + w * 0.12, x + w * 0.88
            pts = [(x0 + (x1 - x0) * i / 12, cy - amp * math.sin(2 * math.pi * i / 12)) for i in range(13)]
            draw.line(pts, fill=fill, width=max(1, round(size / 12)))
        x += w
