"""Shared layout of the picture screens (samples, inpaint, layers): a scrollable picture, a
status line, model loading in a worker, braille/half-block toggle and Save PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from bihm_app.render.png import save_png
from bihm_app.runner.models import LoadedModel, load_model
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.bitmap import MODES, BitmapImage
from bihm_app.tui.widgets.key_footer import KeyFooter


class PictureScreen(BihmScreen):
    """Base for screens that show one picture grid computed from a run's model."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the previous screen"),
        Binding("b", "toggle_mode", "Braille/blocks", tooltip="Switch between braille and half-block pixels"),
        Binding("w", "save_png", "Save PNG", tooltip="Save the picture as a PNG in the run folder"),
    ]
    kind = "picture"
    AUTO_FOCUS = "#picture-scroll"  # letters are keys here, not text for an input

    def __init__(self, name: str) -> None:
        super().__init__()
        self.run_name = name
        self.model: LoadedModel | None = None
        self.last_saved: Path | None = None

    def compose_controls(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield from self.compose_controls()
        yield Static("loading the model …", id="picture-status")
        with VerticalScroll(id="picture-scroll"):
            yield BitmapImage(id="picture", placeholder="")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"{self.kind} — {self.run_name}"
        self.in_thread(load_model, self.run_name, self.root, "cpu", "best", True, done=self._loaded, group="load-model")

    def _loaded(self, lm: LoadedModel) -> None:
        self.model = lm
        self.model_ready()

    def model_ready(self) -> None:
        """Called on the UI thread once the model is loaded."""

    def set_status(self, text: str) -> None:
        self.query_one("#picture-status", Static).update(text)

    def show_grid(self, pictures: np.ndarray, ncol: int = 1) -> None:
        """Show pictures ``(N, H, W)``, at most ``ncol`` per row (fewer when the screen is narrow)."""
        self.query_one("#picture", BitmapImage).set_images(pictures, ncol)

    def file_stem(self) -> str:
        return self.kind

    # -- actions -------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.workers.cancel_all()
        self.app.pop_screen()

    def action_toggle_mode(self) -> None:
        img = self.query_one("#picture", BitmapImage)
        img.mode = MODES[(MODES.index(img.mode) + 1) % len(MODES)]

    def action_save_png(self) -> None:
        grid = self.query_one("#picture", BitmapImage).grid
        if grid is None:
            self.notify("Nothing to save yet", severity="warning")
            return
        folder = self.root / self.run_name / "pictures"
        path = folder / f"{self.file_stem()}.png"

        def save() -> Path:
            folder.mkdir(parents=True, exist_ok=True)
            return save_png(grid, path, scale=4)

        self.in_thread(save, done=self._saved, group="save-png")

    def _saved(self, path: Path) -> None:
        self.last_saved = Path(path)
        self.notify(f"saved {path}", title="PNG")
