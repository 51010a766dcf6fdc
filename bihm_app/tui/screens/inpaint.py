"""The inpaint screen: hide part of a test image and watch Gibbs chains (3.4) fill it in.

The chain runs in a thread worker one sweep at a time and posts every frame; the grid shows
the original, the masked input (missing pixels dotted) and four chains' current means. ``w`` saves
the picture as ``bihm inpaint`` draws it (:func:`inpaint_png`): the hidden region in red.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select

from bihm_app.runner.pictures import INPAINTING, MASKS, inpaint_frames, missing_mask, test_row, to_images
from bihm_app.tui.form_fields import parse_number
from bihm_app.tui.screens.base import text_input
from bihm_app.tui.screens.pictures_base import PictureScreen

CHAINS = 4
CONFIG = INPAINTING  # sweeps, K and the rest: the same defaults as `bihm inpaint`
FRAME_S = 0.08  # pacing of the animation (a frame is shown at most this often)


def inpaint_png(x: np.ndarray, known: np.ndarray, means: np.ndarray, image_shape) -> np.ndarray:
    """The saved picture (H, W, 3), marked as the CLI's (`runner.pictures.inpaint_panel`): original,
    input with the hidden region a solid patch, the chains' means — hidden pixels tinted red by the
    same :func:`~bihm_app.render.png.colorize`, on the same :func:`~bihm_app.render.grid.make_grid`."""
    from bihm_app.render.grid import make_grid
    from bihm_app.render.png import colorize

    missing = (~np.asarray(known, bool)).astype(float)
    rows = np.vstack([x, np.where(known, x, 1.0), means])
    tint = np.vstack([np.zeros_like(missing), missing, np.repeat(missing[None], len(means), 0)])
    ncol = 3
    return colorize(make_grid(rows, ncol=ncol, image_shape=image_shape), make_grid(tint, ncol=ncol, image_shape=image_shape) > 0.75)


def masked_picture(x: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The input as the chain sees it: known pixels, and a sparse dot pattern where pixels are missing."""
    dots = (np.arange(len(x)) % 3 == 0).astype(float)
    return np.where(known, x, dots)


class InpaintScreen(PictureScreen):
    """Pick a test image and a mask; ``g`` runs the chains and animates them."""

    BINDINGS = PictureScreen.BINDINGS + [
        Binding("g", "run_chain", "Run chain", tooltip="Run the inpainting chains (animated)"),
        Binding("m", "mask", "Mask", tooltip="Switch the missing part: bottom, top, left, right, random"),
        Binding("left_square_bracket", "index(-1)", "Image −", tooltip="Previous test image"),
        Binding("right_square_bracket", "index(1)", "Image +", tooltip="Next test image"),
    ]
    kind = "inpaint"

    def __init__(self, name: str, index: int = 0, mask: str = "bottom", seed: int = 0) -> None:
        super().__init__(name)
        self.index = index
        self.mask = mask
        self.seed = seed
        self.frames_shown = 0
        self.sweep = -1
        self.last_frame: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # x, known, means

    def compose_controls(self) -> ComposeResult:
        blink = self.app.cursor_blink  # type: ignore[attr-defined]
        with Horizontal(id="inpaint-controls"):
            yield Label("test image")
            yield text_input(blink, str(self.index), id="inpaint-index")  # text: a bad index is explained, not altered
            yield Label("missing")
            yield Select([(m, m) for m in MASKS], value=self.mask, allow_blank=False, id="inpaint-mask")

    def model_ready(self) -> None:
        self.action_run_chain()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        index, problem = parse_number(event.value, int)
        if problem is None and index is not None and index < 0:
            problem = f"{event.value.strip()!r} is negative (test images count from 0)"
        if problem is not None:
            line = f"test image index {problem}"
            self.fail(line)
            self.show_failure(line)
            return
        self.index = int(index)
        self.action_run_chain()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "inpaint-mask" and event.value != self.mask and isinstance(event.value, str):
            self.mask = event.value
            self.action_run_chain()

    def action_mask(self) -> None:
        self.query_one("#inpaint-mask", Select).value = MASKS[(MASKS.index(self.mask) + 1) % len(MASKS)]

    def action_index(self, delta: int) -> None:
        self.index = max(0, self.index + delta)
        self.query_one("#inpaint-index", Input).value = str(self.index)
        self.action_run_chain()

    def action_run_chain(self) -> None:
        lm = self.model
        if lm is None:
            self.notify("the model is still loading", severity="warning")
            return
        index, mask, seed = self.index, self.mask, self.seed
        self.set_status(f"image {index}, missing {mask}: starting {CHAINS} chains …")
        self.frames_shown = 0

        def work() -> int:
            x = test_row(lm.data_name, index)
            known = ~missing_mask(mask, len(x), lm.image_shape, seed)
            shown = masked_picture(x, known)
            last = 0.0
            t = 0
            for t, means in inpaint_frames(lm.model, x, known, CHAINS, replace(CONFIG, seed=seed), cancelled=self.is_cancelled):
                grid = to_images(np.vstack([x, shown, means]), lm.image_shape)
                wait = FRAME_S - (time.monotonic() - last)
                if wait > 0:
                    time.sleep(wait)
                last = time.monotonic()
                if self.is_cancelled():
                    break
                self.call_ui(self._frame, t, grid, (x, known, means))
            return t

        self.in_thread(work, done=self._finished, group="inpaint", failed=self.show_failure)

    def _frame(self, sweep: int, grid: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.sweep = sweep
        self.last_frame = rows
        self.frames_shown += 1
        self.show_grid(grid, 3)
        self.set_status(
            f"image {self.index}, missing {self.mask}: sweep {sweep}/{CONFIG.steps}  "
            "[dim]original · input · 4 chains (g run · m mask · [ ] image · w save)[/dim]"
        )

    def _finished(self, sweeps: int) -> None:
        self.set_status(
            f"image {self.index}, missing {self.mask}: done, {sweeps} sweeps of {CHAINS} chains (K={CONFIG.K})  "
            "[dim]original · input · 4 chains (g run · m mask · [ ] image · w save)[/dim]"
        )

    def file_stem(self) -> str:
        return f"inpaint-{self.index}-{self.mask}"

    def png_picture(self) -> np.ndarray | None:
        if self.last_frame is None or self.model is None:
            return None
        return inpaint_png(*self.last_frame, self.model.image_shape)
