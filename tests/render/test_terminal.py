"""Character encodings against hand-computed patterns, and fitting to the console."""

import sys
import unicodedata

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console

from bihm_app.errors import DataError
from bihm_app.render.grid import make_grid
from bihm_app.render.terminal import (
    BitmapImage,
    bitmap_lines,
    braille_lines,
    downsample,
    fit_plan,
    halfblock_lines,
    pixel_image,
)

# Unicode braille dot numbers by (row, column) inside the 4x2 cell.
DOT_NUMBER = {
    (0, 0): 1, (1, 0): 2, (2, 0): 3, (0, 1): 4, (1, 1): 5, (2, 1): 6, (3, 0): 7, (3, 1): 8,
}  # fmt: skip


def _digits(n=16, seed=0):
    """Blob-like binary 28x28 'digits' (a ring per image), deterministic."""
    yy, xx = np.mgrid[:28, :28]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        cy, cx, r = rng.uniform(11, 17), rng.uniform(11, 17), rng.uniform(5, 9)
        d = np.hypot(yy - cy, xx - cx)
        out.append((np.abs(d - r) < 1.6).astype(np.uint8))
    return np.stack(out)


def _render(renderable, width, **kw):
    console = Console(width=width, record=True, color_system=None, **kw)
    console.print(renderable)
    return console.export_text().splitlines()


def test_halfblock_hand_pattern():
    on = np.array([[1, 0, 1, 0], [0, 1, 1, 0]], bool)
    assert halfblock_lines(on) == ["▀▄█ "]


def test_halfblock_odd_height_pads_the_last_row():
    assert halfblock_lines(np.ones((3, 1), bool)) == ["█", "▀"]


def test_braille_hand_pattern_4x2():
    on = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], bool)  # dots 1, 5, 3, 8
    assert braille_lines(on) == ["\u2895"]
    assert unicodedata.name(braille_lines(on)[0]) == "BRAILLE PATTERN DOTS-1358"


@pytest.mark.parametrize(("pos", "dot"), sorted(DOT_NUMBER.items()))
def test_braille_each_single_dot_matches_unicode_name(pos, dot):
    on = np.zeros((4, 2), bool)
    on[pos] = True
    (line,) = braille_lines(on)
    assert unicodedata.name(line) == f"BRAILLE PATTERN DOTS-{dot}"


def test_braille_shapes_pad_partial_cells():
    lines = braille_lines(np.ones((5, 3), bool))
    assert len(lines) == 2 and all(len(s) == 2 for s in lines)
    assert lines[0][0] == "\u28ff" and lines[1][1] == "\u2801"  # full cell; only dot 1 left


def test_bitmap_lines_threshold_and_modes():
    g = np.array([[0.2, 0.6], [0.5, 0.49]])
    assert bitmap_lines(g, "halfblock", threshold=0.5) == ["▄▀"]
    assert bitmap_lines(g, "halfblock", threshold=0.1) == ["██"]
    assert bitmap_lines(g, "braille", threshold=0.5) == [chr(0x2800 + 0x02 + 0x08)]
    with pytest.raises(DataError, match="unknown image mode"):
        bitmap_lines(g, "sixel")


def test_downsample_block_average_with_partial_edges():
    a = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    np.testing.assert_allclose(downsample(a, 2), [[0.25, 1.0], [1.0, 0.0]])


def test_fit_plan_choices():
    assert fit_plan(28, 28, "auto", 40) == ("halfblock", 1)
    assert fit_plan(28, 28, "auto", 20) == ("braille", 1)
    assert fit_plan(28, 28, "auto", 7) == ("braille", 2)
    assert fit_plan(28, 28, "halfblock", 20) == ("halfblock", 2)
    assert fit_plan(28, 28, "halfblock", 40, max_height=7) == ("halfblock", 2)


@pytest.mark.parametrize("mode", ["halfblock", "braille", "auto"])
@pytest.mark.parametrize("width", [40, 23, 9])
def test_image_never_exceeds_a_narrow_console(mode, width):
    grid = make_grid(_digits(16), pad=2)  # 122 x 122 pixels
    lines = _render(BitmapImage(grid, mode=mode, title="samples"), width)
    assert lines and max(cell_len(s) for s in lines) <= width
    assert any(set(s) - {" "} for s in lines[1:])  # something is drawn


def test_auto_uses_halfblock_when_it_fits_else_braille():
    digit = _digits(1)[0]
    half = _render(BitmapImage(digit, mode="auto"), 40)
    assert len(half) == 14 and max(len(s) for s in half) == 28
    assert half == halfblock_lines(digit >= 0.5)
    braille = _render(BitmapImage(digit, mode="auto"), 20)
    assert braille == braille_lines(digit >= 0.5)


def test_max_width_limits_below_console_width():
    digit = _digits(1)[0]
    lines = _render(BitmapImage(digit, mode="auto", max_width=14), 80)
    assert max(len(s) for s in lines) <= 14 and len(lines) == 7


def test_title_is_centred_over_the_image():
    lines = _render(BitmapImage(np.ones((2, 10)), mode="halfblock", title="ab"), 80)
    assert lines[0] == "    ab    " and lines[1] == "█" * 10


def test_grey_uses_colours_when_available_and_threshold_without():
    grey = np.array([[0.2, 0.8], [0.8, 0.2]])
    colour = Console(width=20, record=True, color_system="truecolor")
    colour.print(BitmapImage(grey, mode="halfblock"))
    styled = colour.export_text(styles=True)
    assert "38;2;51;51;51" in styled and "48;2;204;204;204" in styled  # fg top, bg bottom
    assert _render(BitmapImage(grey, mode="halfblock"), 20) == ["▄▀"]
    no_colour = Console(width=20, record=True, color_system="truecolor", no_color=True)
    no_colour.print(BitmapImage(grey, mode="halfblock"))
    assert no_colour.export_text() == "▄▀\n"


def test_binary_pictures_stay_plain_characters_even_with_colour():
    colour = Console(width=40, record=True, color_system="truecolor")
    colour.print(BitmapImage(_digits(1)[0], mode="halfblock"))
    assert "\x1b[" not in colour.export_text(styles=True)


def test_rendering_is_deterministic():
    grid = make_grid(_digits(4), pad=1)
    first = _render(BitmapImage(grid, mode="braille"), 30)
    assert first == _render(BitmapImage(grid, mode="braille"), 30)


def test_measure_reports_the_fitted_width():
    console = Console(width=40)
    m = console.measure(BitmapImage(_digits(1)[0], mode="auto"))
    assert (m.minimum, m.maximum) == (28, 28)


def test_pixel_image_falls_back_to_none_without_textual_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "textual_image", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "textual_image.renderable", None)
    assert pixel_image(np.zeros((4, 4))) is None


def test_image_inside_a_panel_fits_the_panel():
    from rich.panel import Panel

    lines = _render(Panel(BitmapImage(make_grid(_digits(4), pad=1), mode="auto")), 40)
    assert max(cell_len(s) for s in lines) <= 40
    assert lines[0].startswith("╭") and lines[-1].startswith("╰")


# -- issue #15: dithering (grey values stay visible) and grids that wrap to the width ------------
def test_ordered_dither_keeps_the_grey_level_of_every_4x4_block():
    """Catches a threshold in place of dithering: a picture of value v must have round(16 v) of
    every 16 pixels of a 4x4 block on (0 stays blank, 1 full, 0.3 about 30 %)."""
    from bihm_app.render.terminal import ordered_dither

    for v in (0.0, 0.05, 0.113, 0.3, 0.5, 0.77, 1.0):
        on = ordered_dither(np.full((8, 12), v))
        blocks = on.reshape(2, 4, 3, 4).sum(axis=(1, 3))
        assert np.all(blocks == int(np.floor(16 * v + 0.5 - 1e-9))), (v, blocks)
    stack = np.random.default_rng(0).random((3, 5, 7))
    assert np.array_equal(ordered_dither(stack)[1], ordered_dither(stack[1]))  # each from its own corner


@pytest.mark.parametrize("mode", ["braille", "halfblock"])
@pytest.mark.parametrize("width", [20, 50, 78, 200])
def test_tiled_lines_fit_the_width_and_keep_every_picture(mode, width):
    """Catches a grid wider than the screen (cut off) and pictures lost when wrapping: the lines
    fit ``width``, and the ink equals the ink of the 16 pictures dithered one by one."""
    from bihm_app.render.terminal import ordered_dither, tile_columns, tiled_lines

    pics = np.random.default_rng(1).random((16, 28, 28))
    lines = tiled_lines(pics, mode, width, ncol=4)
    cw = 2 if mode == "braille" else 1  # pixels per cell across
    fits = [k for k in range(1, 5) if -(-(30 * (k - 1) + 28) // cw) <= width]  # 28 px, 2 px gaps between
    assert tile_columns(16, 28, mode, width, 4) == max(fits, default=1)
    assert max(len(s) for s in lines) <= max(width, 28 // cw)
    text = "".join(lines)
    if mode == "braille":
        ink = sum(bin(ord(c) - 0x2800).count("1") for c in text)
    else:
        ink = sum({"▀": 1, "▄": 1, "█": 2}.get(c, 0) for c in text)
    assert ink == ordered_dither(pics).sum()
