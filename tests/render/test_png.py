"""PNG / GIF round trips, read back with Pillow, and mask colouring."""

import os

import numpy as np
import pytest
from PIL import Image

from bihm_app.errors import BihmError, DataError
from bihm_app.render.png import colorize, save_gif, save_png, to_pil

PATTERN = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0]])  # 2 rows x 3 columns


def test_png_round_trip_size_mode_and_pixels(tmp_path):
    path = save_png(PATTERN, tmp_path / "p.png", scale=4)
    img = Image.open(path)
    assert img.size == (3 * 4, 2 * 4) and img.mode == "L"
    a = np.asarray(img)
    expected = np.round(PATTERN * 255).astype(np.uint8)
    # NEAREST upscale: every 4x4 block is one value
    np.testing.assert_array_equal(a, np.kron(expected, np.ones((4, 4), np.uint8)))


def test_png_write_is_atomic_overwrites_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "sub" / "grid.png"  # parent is created
    save_png(np.zeros((2, 2)), out, scale=1)
    save_png(np.ones((3, 3)), out, scale=1)
    assert np.asarray(Image.open(out)).tolist() == [[255] * 3] * 3
    assert os.listdir(out.parent) == ["grid.png"]


def test_png_unwritable_path_is_a_one_line_bihm_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(BihmError, match="cannot write"):
        save_png(np.zeros((2, 2)), blocker / "x.png")


def test_bad_picture_shapes_are_rejected(tmp_path):
    with pytest.raises(DataError):
        save_png(np.zeros((2, 2, 2, 2)), tmp_path / "x.png")
    with pytest.raises(DataError):
        to_pil(np.zeros((2, 2)), scale=0)


def test_colorize_highlights_masked_pixels_only():
    mask = np.array([[False, True, True], [False, False, False]])
    rgb = colorize(PATTERN, mask, color=(200, 40, 40))
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_allclose(rgb[0, 0], [0, 0, 0])  # unmasked stays grey
    np.testing.assert_allclose(rgb[1, 0], [1, 1, 1])
    np.testing.assert_allclose(rgb[0, 1], np.array([200, 40, 40]) / 255)  # v = 1: full colour
    np.testing.assert_allclose(rgb[0, 2], np.array([200, 40, 40]) / 255 * (0.25 + 0.75 * 0.5))
    with pytest.raises(DataError, match="mask shape"):
        colorize(PATTERN, np.zeros((3, 3)))


def test_rgb_png_round_trip(tmp_path):
    mask = np.zeros((2, 3), bool)
    mask[0, 1] = True
    path = save_png(colorize(PATTERN, mask), tmp_path / "c.png", scale=2)
    img = Image.open(path)
    assert img.mode == "RGB" and img.size == (6, 4)
    assert img.getpixel((2, 0)) == (200, 40, 40)
    assert img.getpixel((0, 2)) == (255, 255, 255)


def test_gif_round_trip_frames_and_pixels(tmp_path):
    frames = [PATTERN, 1.0 - PATTERN, np.full((2, 3), 0.5)]
    path = save_gif(frames, tmp_path / "a.gif", scale=2, duration_ms=80, loop=0)
    img = Image.open(path)
    assert img.n_frames == 3 and img.size == (6, 4)
    assert img.info["loop"] == 0 and img.info["duration"] == 80
    for k, frame in enumerate(frames):
        img.seek(k)
        got = np.asarray(img.convert("L"))[::2, ::2]
        np.testing.assert_array_equal(got, np.round(frame * 255).astype(np.uint8))


def test_gif_with_colour_frames_keeps_colours(tmp_path):
    mask = np.zeros((2, 3), bool)
    mask[1, 2] = True
    frames = [colorize(PATTERN, mask), PATTERN]  # mixed grey / colour -> RGB
    img = Image.open(save_gif(frames, tmp_path / "c.gif", scale=1))
    assert img.n_frames == 2
    img.seek(0)
    assert img.convert("RGB").getpixel((2, 1)) == (50, 10, 10)  # v = 0: dark shade of the colour


def test_gif_rejects_mismatched_or_missing_frames(tmp_path):
    with pytest.raises(DataError, match="differ in size"):
        save_gif([np.zeros((2, 2)), np.zeros((3, 3))], tmp_path / "x.gif")
    with pytest.raises(DataError, match="at least one frame"):
        save_gif([], tmp_path / "x.gif")
