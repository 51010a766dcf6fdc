"""The numbers the thesis publishes, for ``bihm repro`` to compare against.

Source: J. Bornschein's BiHM thesis text (``shared/paper/bihm-thesis.txt``), summarised in
``docs/bihm-math.md``:

* table 3.1 (UCI, test set, nats; the BiHM block): −log p̃*(x), −log p(x), −log p*(x), −2 log Z;
* table 3.2: the UCI architectures;
* section 3.6.2 and the RWS-protocol paragraph: binarized MNIST, test log p(x), log p*(x) and the
  bound log p̃*(x), with the standard errors the thesis gives.

The thesis' UCI rows are not internally consistent: −log p*(x) should equal −log p̃*(x) + 2 log Z,
but e.g. adult gives 13.79 − 0.20 = 13.59 ≠ 13.82. ``bihm repro`` therefore compares every column
on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Table 3.2: latent layer sizes, bottom-up.
UCI_LAYERS: dict[str, tuple[int, ...]] = {
    "adult": (100, 70, 50, 25),
    "connect4": (300, 110, 50, 20),
    "dna": (200, 150, 130, 100, 70, 50, 30, 20, 10),
    "mushrooms": (150, 100, 90, 60, 40, 20),
    "nips": (200, 100, 50, 25),
}
UCI_SETS = tuple(UCI_LAYERS)

#: The RWS-protocol paragraph's binarized-MNIST network (the 12-layer one is engine.model.PAPER12).
RWS7_LAYERS: tuple[int, ...] = (400, 300, 200, 100, 50, 25, 10)

#: Table 3.1, BiHM block, in nats (no standard errors given).
UCI_TABLE_3_1: dict[str, dict[str, float]] = {
    "adult": {"nll_ptilde": 13.79, "nll_p": 13.78, "nll_pstar": 13.82, "neg_log_z2": 0.20},
    "connect4": {"nll_ptilde": 12.12, "nll_p": 12.43, "nll_pstar": 12.31, "neg_log_z2": 0.27},
    "dna": {"nll_ptilde": 86.39, "nll_p": 86.49, "nll_pstar": 86.92, "neg_log_z2": 0.56},
    "mushrooms": {"nll_ptilde": 9.40, "nll_p": 9.40, "nll_pstar": 9.40, "neg_log_z2": 0.09},
    "nips": {"nll_ptilde": 272.62, "nll_p": 272.66, "nll_pstar": 272.71, "neg_log_z2": 1.97},
}

#: The columns compared for UCI, with their labels.
UCI_COLUMNS = (
    ("nll_ptilde", "−log p̃*(x)"),
    ("nll_p", "−log p(x)"),
    ("nll_pstar", "−log p*(x)"),
    ("neg_log_z2", "−2 log Z"),
)


@dataclass(frozen=True)
class ThesisValue:
    """A published number and its standard error (None where the thesis gives none)."""

    mean: float
    se: float | None = None
    note: str = ""


#: Binarized MNIST test log-likelihoods (nats; higher is better) per protocol.
MNIST_THESIS: dict[str, dict[str, ThesisValue]] = {
    # section 3.6.2: "log p*(x) ≃ −84.8 ± 0.23 and log p(x) ≃ −84.5 ± 0.22"; table 3.3 bound 89.2
    "thesis12": {
        "log_p": ThesisValue(-84.5, 0.22, "section 3.6.2"),
        "log_pstar": ThesisValue(-84.8, 0.23, "section 3.6.2"),
        "log_ptilde": ThesisValue(-89.2, None, "table 3.3, bound column"),
    },
    # RWS-protocol paragraph: "− log p ≃ 86.7 ± 0.23 and − log p̃* ≃ 89.8 ± 0.24"
    "rws7": {
        "log_p": ThesisValue(-86.7, 0.23, "RWS-protocol paragraph"),
        "log_ptilde": ThesisValue(-89.8, 0.24, "RWS-protocol paragraph"),
    },
}
