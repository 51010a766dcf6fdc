"""The data sets embedded in the package (``assets/``) and where each came from.

Sizes, dimensions, densities and SHA-256 digests are not repeated here: `build_assets` measures them
and writes them to ``assets/manifest.json``, which the loader reads and verifies.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinSpec:
    """One embedded data set.

    kind: ``"packed"`` (bit-packed binary splits) or ``"grey"`` (uint8 intensities k, binarized
    on the fly as Bernoulli(k/255): the dynamic set).
    source: the file under the shared data folder the asset is built from.
    """

    name: str
    asset: str
    kind: str
    source: str
    description: str
    image_shape: tuple[int, int] | None = None

    @property
    def dynamic(self) -> bool:
        return self.kind == "grey"


BUILTINS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            "bmnist", "bmnist.npz", "packed", "binarized_mnist.npz",
            "binarized MNIST (Larochelle & Murray 2011 fixed binarization), 50k/10k/10k, digit labels",
            (28, 28),
        ),
        BuiltinSpec(
            "mnist-dyn", "mnist-grey.npz", "grey", "mnist_grey.npz",
            "MNIST 50k/10k/10k binarized afresh every epoch (Bernoulli k/255); valid/test one fixed draw",
            (28, 28),
        ),
        BuiltinSpec("adult", "adult.npz", "packed", "uci/adult.npz", "UCI Adult (a5a), NADE split"),
        BuiltinSpec("connect4", "connect4.npz", "packed", "uci/connect4.npz", "UCI Connect-4 positions, NADE split"),
        BuiltinSpec("dna", "dna.npz", "packed", "uci/dna.npz", "UCI/StatLog DNA splice junctions, NADE split"),
        BuiltinSpec("mushrooms", "mushrooms.npz", "packed", "uci/mushrooms.npz", "UCI Mushroom, NADE split"),
        BuiltinSpec("nips", "nips.npz", "packed", "uci/nips.npz", "NIPS 0-12 word presence (500 words), NADE split"),
    )
}

#: The data set a run uses when none is named.
DEFAULT_DATASET = "bmnist"
