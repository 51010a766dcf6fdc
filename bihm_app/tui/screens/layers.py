"""The layers screen: layer-wise generation — what one state of a chosen layer encodes.

Below one top-down state of h_l (l ≥ 2) the 16 completions differ: each draws its own h_1 … h_{l-1}.
Below one state of h_1 they cannot: x given h_1 is a product of Bernoullis, so all 16 pictures of
its means would be the same picture — the screen shows it once and says why.
"""

from __future__ import annotations

from textual.binding import Binding

from bihm_app.runner.pictures import layer_pictures, to_images
from bihm_app.tui.screens.pictures_base import PictureScreen

N_SAMPLES = 16
NCOL = 4


class LayersScreen(PictureScreen):
    """``[``/``]`` pick the layer, ``g`` draws a new top-down state."""

    BINDINGS = PictureScreen.BINDINGS + [
        Binding("left_square_bracket", "layer(-1)", "Layer −", tooltip="One layer down"),
        Binding("right_square_bracket", "layer(1)", "Layer +", tooltip="One layer up"),
        Binding("g", "regenerate", "Regenerate", tooltip="A new top-down state (next seed)"),
    ]
    kind = "layers"

    def __init__(self, name: str, layer: int = 1, seed: int = 0) -> None:
        super().__init__(name)
        self.layer_index = layer
        self.seed = seed
        self.generated = 0

    def model_ready(self) -> None:
        if self.model is not None:
            self.layer_index = min(max(1, self.layer_index), self.model.n_layers)
        self.generate()

    def generate(self) -> None:
        lm = self.model
        if lm is None:
            return
        layer, seed = self.layer_index, self.seed
        self.set_status(f"layer {layer}: generating …")

        def work():
            return to_images(layer_pictures(lm.model, layer, N_SAMPLES, seed).means, lm.image_shape)

        self.in_thread(work, done=self._show, group="layers", failed=self.show_failure)

    def _show(self, grid) -> None:
        self.generated += 1
        L = self.model.n_layers if self.model else "?"
        if self.layer_index == 1:
            self.show_grid(grid[:1], 1)
            self.set_status(
                f"layer 1 of {L}: the pixel means p(x | h_1) below one top-down h_1, seed {self.seed}. One picture: "
                "given h_1 the pixels are independent, so every completion has these means.  "
                "[dim](] higher layers · g another h_1 · w save)[/dim]"
            )
            return
        self.show_grid(grid, NCOL)
        self.set_status(
            f"layer {self.layer_index} of {L}: {N_SAMPLES} completions below one state of h_{self.layer_index}, "
            f"seed {self.seed}  [dim]([ ] layer · g regenerate · w save)[/dim]"
        )

    def file_stem(self) -> str:
        return f"layers-h{self.layer_index}-seed{self.seed}"

    def action_layer(self, delta: int) -> None:
        if self.model is None:
            return
        new = min(max(1, self.layer_index + delta), self.model.n_layers)
        if new == self.layer_index:
            self.notify(f"the model has layers 1 … {self.model.n_layers}", severity="warning")
            return
        self.layer_index = new
        self.generate()

    def action_regenerate(self) -> None:
        self.seed += 1
        self.generate()
