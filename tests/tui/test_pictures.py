"""The picture screens agree with the command line: the same default sampler (and say which one is
shown), layer 1 explained or drawn as different pictures, inpainting marked as in the CLI's PNG."""

from __future__ import annotations

import inspect
from dataclasses import replace

import numpy as np
from textual.widgets import Static

from bihm_app.runner.pictures import SAMPLING
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.samples import SamplesScreen
from tests.tui.test_screens import SIZE, runs_loaded, wait_for


async def test_samples_screen_starts_with_the_cli_default_sampler_and_names_it(runs_root, monkeypatch):
    """Catches the dashboard showing ancestral samples of p where `bihm sample` draws Gibbs samples
    of p* (Algorithm 2) by default, and a status line that does not say which sampler is shown."""
    from bihm_app.cli import sample_cmd

    monkeypatch.setattr("bihm_app.tui.screens.samples.SAMPLING", replace(SAMPLING, steps=3))
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_samples("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.generated >= 1)
        s = app.screen
        cli_default = inspect.signature(sample_cmd.sample).parameters["method"].default
        assert s.method == cli_default == "gibbs"
        status = str(s.query_one("#picture-status", Static).render())
        assert "Gibbs samples of p*" in status, status


async def test_layer_1_shows_one_picture_and_says_why_higher_layers_show_different_ones(runs_root):
    """Catches the layers screen showing 16 identical pictures at layer 1 (the Bernoulli means of x
    given one h_1 are one picture), which looks broken; above layer 1 the completions must differ."""
    from bihm_app.tui.screens.layers import LayersScreen
    from bihm_app.tui.widgets.bitmap import BitmapImage

    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_layers("beta")  # layers 10, 5, 3
        await wait_for(pilot, lambda: isinstance(app.screen, LayersScreen) and app.screen.generated >= 1)
        s = app.screen
        images = s.query_one("#picture", BitmapImage).images
        status = str(s.query_one("#picture-status", Static).render())
        distinct = {im.tobytes() for im in images}
        assert len(images) == len(distinct), f"{len(images)} pictures, {len(distinct)} different"
        assert len(images) == 1 and "independent" in status, status
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: s.generated >= 2)
        images = s.query_one("#picture", BitmapImage).images
        assert len(images) == 16 and len({im.tobytes() for im in images}) > 1


async def test_inpaint_png_marks_the_hidden_pixels_in_red_as_the_cli_does(runs_root, monkeypatch):
    """Catches the dashboard's saved inpainting PNG marking the hidden pixels with a white dot
    pattern (which reads as ink) where `bihm inpaint` tints them red: the input's hidden region and
    the four chains' completions there must be tinted (R ≠ G), every other pixel grey, and the
    input's hidden region the CLI's solid red patch."""
    from PIL import Image

    from bihm_app.runner.pictures import INPAINTING, missing_mask
    from bihm_app.tui.screens.inpaint import InpaintScreen

    monkeypatch.setattr("bihm_app.tui.screens.inpaint.FRAME_S", 0.0)
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=2))
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_inpaint("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, InpaintScreen) and app.screen.sweep == 2)
        await pilot.pause(0.2)
        s = app.screen
        await pilot.press("w")
        await wait_for(pilot, lambda: s.last_saved is not None)
        png = np.asarray(Image.open(s.last_saved).convert("RGB")).astype(int)
    hidden = int(missing_mask("bottom", 784, (28, 28)).sum())
    tinted = png[..., 0] != png[..., 1]
    scale = 4 * 4  # each pixel a 4 × 4 block
    assert tinted.sum() == 5 * hidden * scale  # input + 4 chains; the original untouched
    assert (np.all(png == (200, 40, 40), axis=-1)).sum() >= hidden * scale  # the input's solid patch
    assert np.all(png[~tinted][:, 0] == png[~tinted][:, 2])  # the rest grey
