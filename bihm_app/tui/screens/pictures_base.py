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
from bihm_app.errors import RunError
from bihm_app.runner.models import LoadedModel, load_model
from bihm_app.runner.preflight import usable_checkpoint
from bihm_app.store.runs import open_run
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.bitmap import MODES, BitmapImage
from bihm_app.tui.widgets.key_footer import KeyFooter
from bihm_app.tui.format import escape


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
        self.warning: str | None = None  # the checkpoint fallback, shown under the status
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
        self.in_thread(self._load, done=self._loaded, group="load-model", failed=self.show_failure)

    def _load(self) -> tuple[LoadedModel, str | None]:
        """The model from the checkpoint the runner's check picks (best.h5, else checkpoint.h5 —
        as the runs list and the run view decide), with the warning when it had to fall back."""
        found = usable_checkpoint(open_run(self.run_name, self.root), "best")
        if found.path is None:
            raise RunError(found.refusal(self.run_name))
        return load_model(found.path, self.root, "cpu", "best", True), found.warning

    def _loaded(self, loaded: tuple[LoadedModel, str | None]) -> None:
        self.model, self.warning = loaded
        self.model_ready()

    def show_failure(self, line: str) -> None:
        """The status line says what failed (never a 'working …' left standing)."""
        self.set_status(f"[b]failed:[/b] {escape(line)}")

    def model_ready(self) -> None:
        """Called on the UI thread once the model is loaded."""

    def set_status(self, text: str) -> None:
        if self.warning:
            text += f"\n[b]warning:[/b] {escape(self.warning)}"
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

    def png_picture(self) -> np.ndarray | None:
        """What ``w`` saves: the picture on screen (a screen may colour it as the CLI's PNG does)."""
        return self.query_one("#picture", BitmapImage).grid

    def action_save_png(self) -> None:
        grid = self.png_picture()
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
        self.notify(f"saved\n{self.toast_path(path)}", title="PNG")
