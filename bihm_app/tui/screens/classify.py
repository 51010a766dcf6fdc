"""The classify view of a semi-supervised run (thesis chapter 4): error ± SE, per-class errors, the
confusion matrix and the split's digits with their true and predicted labels, most confidently
wrong first.

The numbers come from :func:`bihm_app.runner.classify.classify_run`, the function behind
``bihm classify``: the same run, split, K and seed give the same error here and there. The
classification runs in a thread worker with a progress bar; results are kept per (split, K), so
switching back is instant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical
from textual.widgets import DataTable, Header, ProgressBar, Static
from textual.worker import get_current_worker

from bihm_app.runner.classify import Classification, classify_refusal, classify_run, ranked
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.bitmap import MODES
from bihm_app.tui.widgets.digit_gallery import DigitGallery, Tile
from bihm_app.tui.widgets.key_footer import KeyFooter
from bihm_app.tui.format import escape

SPLITS = ("test", "valid")
K_CHOICES = (1, 10, 100, 1000)
DEFAULT_K = 100  # as `bihm classify`
N_TILES = 60  # digits in the gallery (the most telling ones; see runner.classify.ranked)


class Cancelled(Exception):
    """Raised in the worker's progress callback when the work is no longer wanted."""


def open_classify(screen: BihmScreen, name: str, **kwargs) -> None:
    """Open the classify view of run ``name`` from ``screen`` if the run has a checkpoint with a
    label layer, else say why in a notification (the check reads checkpoint metas in a worker)."""

    def push(refusal: str | None) -> None:
        screen.fail(refusal, title="refused") if refusal else screen.app.push_screen(ClassifyScreen(name, **kwargs))

    screen.in_thread(classify_refusal, name, screen.root, done=push, group="open-classify")


class ClassifyScreen(BihmScreen):
    """Classification of a split by a semi-supervised run's best model."""

    CSS_PATH = "classify.tcss"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]  # side by side from 140 columns
    AUTO_FOCUS = "#classify-confusion"
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the previous screen"),
        Binding("s", "split", "Split", tooltip="Switch the split: test / valid"),
        Binding("k", "samples_k", "K", tooltip=f"Change K, the samples per digit ({', '.join(map(str, K_CHOICES))})"),
        Binding("a", "all_digits", "All digits", tooltip="All digits again (enter on a matrix cell shows only its digits)"),
        Binding("b", "toggle_mode", "Braille/blocks", tooltip="Switch between braille and half-block pixels"),
        Binding("w", "save_png", "Save PNG", tooltip="Save the matrix and the digits as PNGs (run folder)"),
    ]

    def __init__(self, name: str, split: str = "test", K: int | None = None, seed: int = 0, n: int = 0) -> None:
        super().__init__()
        self.run_name = name
        self.split = split
        self.K = K or DEFAULT_K
        self.seed = seed
        self.n = n  # classify n points drawn at random from the split (0: all; runner/subsets.py)
        self.results: dict[tuple[str, int], Classification] = {}
        self.result: Classification | None = None
        self.cell: tuple[int | None, int | None] = (None, None)  # (true, predicted) filter of the digits
        self.shown: int = 0  # how many results have been shown (tests wait on it)
        self.last_saved: list[Path] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("", id="classify-summary")
        yield ProgressBar(id="classify-progress", show_eta=True)
        with ScrollableContainer(id="classify-body"):
            with Vertical(id="classify-left"):
                yield Static("[b]confusion[/b] rows: true, columns: predicted ([b]enter[/b]: digits)", id="classify-confusion-title")
                yield DataTable(id="classify-confusion", cursor_type="cell", zebra_stripes=False)
            with Vertical(id="classify-right"):
                yield Static("", id="classify-gallery-title")
                yield DigitGallery(id="classify-gallery")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"classify — {self.run_name}"
        self.classify()

    # -- the work ------------------------------------------------------------------------------
    def classify(self) -> None:
        """Show the cached result of (split, K) or compute it in a worker (a newer one cancels it)."""
        key = (self.split, self.K)
        if key in self.results:
            self.workers.cancel_group(self, "classify")
            self._show(self.results[key])
            return
        bar = self.query_one("#classify-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._set_summary(f"classifying the {self.split} split with K = {self.K} (seed {self.seed}) …")
        split, K, seed, n, app = self.split, self.K, self.seed, self.n, self.app

        def started(total: int) -> None:
            if not get_current_worker().is_cancelled:
                app.call_from_thread(bar.update, total=total, progress=0)

        def advanced(m: int) -> None:
            if get_current_worker().is_cancelled:
                raise Cancelled()
            app.call_from_thread(bar.advance, m)

        def work() -> Classification:
            return classify_run(self.run_name, self.root, split, K, seed=seed, n=n, n_wrong=0, device="cpu",
                                cache=True, progress=advanced, on_start=started)  # fmt: skip

        self.in_thread(work, done=self._store, group="classify", failed=self._failed)

    def _failed(self, line: str) -> None:
        """A failed classification says so (never a 'classifying …' left standing)."""
        self.query_one("#classify-progress", ProgressBar).display = False
        self._set_summary(f"[b]failed:[/b] {escape(line)}")

    def _store(self, res: Classification) -> None:
        self.results[(res.split, res.evaluation.K)] = res
        if (res.split, res.evaluation.K) == (self.split, self.K):
            self._show(res)

    def _show(self, res: Classification) -> None:
        self.result = res
        self.query_one("#classify-progress", ProgressBar).display = False
        ev = res.evaluation
        where = f"{Path(res.checkpoint).name}, label {'on top' if res.placement == 'top' else 'at the bottom'}"
        self._set_summary(
            f"[b]{res.data} / {res.split}[/b] — {ev.n} points — {where} — K = {ev.K}, seed {res.seed}\n"
            f"error [b]{100 * ev.error.mean:.2f} ± {100 * ev.error.se:.2f} %[/b]   "
            f"log p̃*(y|x) {ev.log_py.mean:.3f} ± {ev.log_py.se:.3f}   log p̃*(x) {ev.log_ptilde.mean:.2f} ± {ev.log_ptilde.se:.2f}"
        )
        self._fill_table(res)
        self._fill_gallery()
        self.shown += 1

    def _set_summary(self, text: str) -> None:
        self.query_one("#classify-summary", Static).update(text)

    def _fill_table(self, res: Classification) -> None:
        ev = res.evaluation
        table = self.query_one("#classify-confusion", DataTable)
        cursor = table.cursor_coordinate
        table.clear(columns=True)
        C = ev.n_classes
        width = max(4, len(str(int(ev.confusion.max())) if ev.n else 1))
        for j in range(C):
            table.add_column(Text(str(j), justify="right"), key=f"p{j}", width=width)
        table.add_column(Text("error %", justify="right"), key="error")
        for i, (row, err) in enumerate(zip(ev.confusion.tolist(), ev.class_errors())):
            cells = [Text(str(v), style="bold green" if i == j else ("red" if v else "dim"), justify="right")
                     for j, v in enumerate(row)]  # fmt: skip
            e = "—" if err.mean != err.mean else f"{100 * err.mean:.1f}±{100 * err.se:.1f}"
            table.add_row(*cells, Text(e, justify="right"), key=str(i), label=Text(str(i), style="bold"))
        table.move_cursor(row=cursor.row, column=cursor.column)

    def _fill_gallery(self) -> None:
        res = self.result
        if res is None:
            return
        gallery = self.query_one("#classify-gallery", DigitGallery)
        title = self.query_one("#classify-gallery-title", Static)
        true, predicted = self.cell
        order = ranked(res, true, predicted)
        ev = res.evaluation
        y, pred = ev.y.numpy(), ev.predicted.numpy()
        if true is None:
            what = f"most confidently wrong first: {int((pred != y).sum())} mistakes"
        elif predicted is None:
            what = f"true {true}: {len(order)} digits ([b]a[/b]: all)"
        else:
            what = f"true {true}, predicted {predicted}: {len(order)} digits ([b]a[/b]: all)"
        title.update(f"[b]digits[/b] true→predicted p̃*, {what}")
        if res.image_shape is None:
            gallery.set_tiles([], placeholder=f"data set {res.data} has no picture shape: no digits to draw")
            return
        shape = res.image_shape
        tiles = [Tile(res.points[i].reshape(shape), f"{y[i]}→{pred[i]} {res.confidence[i]:.2f}", bool(y[i] != pred[i]))
                 for i in order[:N_TILES]]  # fmt: skip
        gallery.set_tiles(tiles, placeholder="no digits in this cell")

    # -- actions -------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.workers.cancel_all()
        self.app.pop_screen()

    def action_split(self) -> None:
        self.split = SPLITS[(SPLITS.index(self.split) + 1) % len(SPLITS)] if self.split in SPLITS else SPLITS[0]
        self.classify()

    def action_samples_k(self) -> None:
        later = [k for k in K_CHOICES if k > self.K]
        self.K = later[0] if later else K_CHOICES[0]
        self.classify()

    def action_all_digits(self) -> None:
        self.cell = (None, None)
        self._fill_gallery()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        if self.result is None:
            return
        row, col = event.coordinate.row, event.coordinate.column
        self.cell = (row, col if col < self.result.evaluation.n_classes else None)
        self._fill_gallery()
        self.query_one("#classify-right").scroll_visible()

    def action_toggle_mode(self) -> None:
        gallery = self.query_one("#classify-gallery", DigitGallery)
        gallery.mode = MODES[(MODES.index(gallery.mode) + 1) % len(MODES)]

    def action_save_png(self) -> None:
        res = self.result
        if res is None:
            self.notify("Nothing to save yet", severity="warning")
            return
        tiles = self.query_one("#classify-gallery", DigitGallery).tiles
        folder = self.root / self.run_name / "pictures"
        stem = f"classify-{res.split}-K{res.evaluation.K}"

        def save() -> list[Path]:
            from bihm_app.render.classes import save_captioned_grid_png, save_confusion_png

            folder.mkdir(parents=True, exist_ok=True)
            ev = res.evaluation
            title = f"{res.data} / {res.split}: error {100 * ev.error.mean:.2f} ± {100 * ev.error.se:.2f} % (K = {ev.K})"
            paths = [save_confusion_png(ev.confusion.numpy(), folder / f"{stem}.png", title)]
            if tiles:
                images = np.stack([t.picture for t in tiles])
                captions = [t.caption.replace("→", "->") for t in tiles]
                paths.append(save_captioned_grid_png(images, captions, folder / f"{stem}-digits.png", ))
            return paths

        self.in_thread(save, done=self._saved, group="save-png")

    def _saved(self, paths: list[Path]) -> None:
        self.last_saved = [Path(p) for p in paths]
        self.notify("saved\n" + "\n".join(self.toast_path(p) for p in paths), title="PNG")
