"""The samples screen: a grid of model samples (Gibbs, importance-resampled or ancestral).

It starts with ``bihm sample``'s default, :data:`~bihm_app.runner.pictures.SAMPLING` (Gibbs,
Algorithm 2: samples of the model's p*, the distribution a BiHM defines and is trained on;
ancestral samples come from the top-down p alone), and its status line names the sampler shown.
"""

from __future__ import annotations

from textual.binding import Binding

from dataclasses import replace

from bihm_app.runner.pictures import METHODS, SAMPLING, sample_pictures, to_images
from bihm_app.tui.screens.pictures_base import PictureScreen
from bihm_app.tui.format import escape

N_SAMPLES = 16
NCOL = 4


class SamplesScreen(PictureScreen):
    """Samples of a run's best model; ``g`` draws new ones, ``m`` switches the method."""

    BINDINGS = PictureScreen.BINDINGS + [
        Binding("g", "regenerate", "Regenerate", tooltip="Draw new samples (next seed)"),
        Binding("m", "method", "Method", tooltip="Switch the sampler: gibbs (p*, the default) / resample (p*) / ancestral (p alone)"),
    ]
    kind = "samples"

    def __init__(self, name: str, method: str | None = None, seed: int = 0) -> None:
        super().__init__(name)
        self.method = method or SAMPLING.method  # the CLI's default
        self.seed = seed
        self.generated = 0

    def model_ready(self) -> None:
        self.generate()

    def generate(self) -> None:
        lm = self.model
        if lm is None:
            return
        self.set_status(f"drawing {N_SAMPLES} samples with the {self.method} sampler (seed {self.seed}) …")
        method, seed = self.method, self.seed

        def work():
            pics = sample_pictures(lm.model, N_SAMPLES, replace(SAMPLING, method=method, seed=seed))
            return to_images(pics.means, lm.image_shape), pics.title

        self.in_thread(work, done=self._show, group="samples", failed=self.show_failure)

    def _show(self, result) -> None:
        grid, title = result
        self.generated += 1
        self.show_grid(grid, NCOL)
        lm = self.model
        self.set_status(
            f"[b]{escape(title)}[/b]: {N_SAMPLES} samples, seed {self.seed}, from {lm.path.name if lm else '?'}  "
            "[dim](g regenerate · m method · b pixels · w save)[/dim]"
        )

    def file_stem(self) -> str:
        return f"samples-{self.method}-seed{self.seed}"

    def action_regenerate(self) -> None:
        self.seed += 1
        self.generate()

    def action_method(self) -> None:
        self.method = METHODS[(METHODS.index(self.method) + 1) % len(METHODS)]
        self.generate()
