"""`Dataset`: the splits of one binary data set, and `DatasetInfo`: one row of the catalogue.

A static data set holds fixed 0/1 arrays. The dynamic one (mnist-dyn) holds grey intensities k and
binarizes them as Bernoulli(k/255): the train split afresh for every (seed, epoch), the valid and
test splits once, with a fixed seed, so that evaluations of different runs compare.
Arrays handed out are read-only views of the cached data; copy before writing into them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from bihm_app.data.packed import SPLITS
from bihm_app.errors import ConfigError, DataError

#: Domain tags mixed into seeds so that data draws never reuse the model's random streams.
_TRAIN_DRAW_TAG = 0x62696D64  # "bimd"
_EVAL_DRAW_TAG = 0x65766131
#: The fixed seed of the valid/test binarization of dynamic data sets (never change: it defines them).
EVAL_DRAW_SEED = 20160101


def _check_seed(seed: int, epoch: int | None) -> tuple[int, int]:
    if int(seed) < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    epoch = 0 if epoch is None else int(epoch)
    if epoch < 0:
        raise ConfigError(f"epoch must be >= 0, got {epoch}")
    return int(seed), epoch


def epoch_generator(seed: int, epoch: int | None, stream: int) -> np.random.Generator:
    """A numpy Generator that depends only on (seed, epoch, stream): no global random state."""
    seed, epoch = _check_seed(seed, epoch)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, stream])))


def bernoulli_k255(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact Bernoulli(k/255) draw of uint8 intensities k: r ~ U{0..254}, x = r < k (k=255 -> 1)."""
    r = rng.integers(0, 255, size=grey.shape, dtype=np.uint8)
    return np.less(r, grey).view(np.uint8)


def _readonly(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


@dataclass(frozen=True)
class DatasetInfo:
    """One row of `list_datasets()`; sizes and dimension are the expected ones when not present."""

    name: str
    description: str
    splits: dict[str, int]
    dim: int | None
    density: float | None
    location: str | None
    present: bool
    verified: bool
    source: str  # "embedded" | "fetched" | "imported"
    image_shape: tuple[int, int] | None = None
    dynamic: bool = False
    problem: str | None = None  # why a set is absent or failed verification


@dataclass
class Dataset:
    """A loaded data set. Use `get(split, epoch=, seed=)` for (N, dim) uint8 0/1 rows."""

    name: str
    dim: int
    sha256: str
    image_shape: tuple[int, int] | None
    description: str
    source: str
    location: str
    _data: Mapping[str, np.ndarray] = field(repr=False)
    _labels: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)

    dynamic = False
    split_names: tuple[str, ...] = SPLITS

    def _check_split(self, split: str) -> str:
        if split not in self._data:
            raise DataError(f"data set '{self.name}': no split '{split}' (splits: {', '.join(self.split_names)})")
        return split

    def size(self, split: str) -> int:
        """Number of rows of `split`."""
        return int(self._data[self._check_split(split)].shape[0])

    def get(self, split: str, epoch: int | None = None, seed: int = 0) -> np.ndarray:
        """(N, dim) uint8 0/1 rows of `split` (read-only). Static sets ignore `epoch` and `seed`."""
        return self._data[self._check_split(split)]

    def labels(self, split: str) -> np.ndarray | None:
        """uint8 class labels of `split`, or None for sets without labels."""
        return self._labels.get(self._check_split(split))

    def density(self, split: str = "train") -> float:
        """Mean of the pixels/features of `split` (for the dynamic set: the mean Bernoulli probability)."""
        return float(self._data[self._check_split(split)].mean(dtype=np.float64))


@dataclass
class DynamicDataset(Dataset):
    """Grey images binarized afresh: train depends on (seed, epoch), valid/test on a fixed seed."""

    dynamic = True
    _fixed: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def get(self, split: str, epoch: int | None = None, seed: int = 0) -> np.ndarray:
        """train: a fresh Bernoulli(k/255) draw for (seed, epoch) (epoch None = 0), writable;
        valid/test: one fixed, cached draw (read-only) whatever the seed and epoch."""
        grey = self._data[self._check_split(split)]
        if split == "train":
            return bernoulli_k255(grey, epoch_generator(seed, epoch, _TRAIN_DRAW_TAG))
        if split not in self._fixed:
            rng = epoch_generator(EVAL_DRAW_SEED, self.split_names.index(split), _EVAL_DRAW_TAG)
            self._fixed[split] = _readonly(bernoulli_k255(grey, rng))
        return self._fixed[split]

    def grey(self, split: str) -> np.ndarray:
        """uint8 intensities k of `split` (Bernoulli means k/255)."""
        return self._data[self._check_split(split)]

    def density(self, split: str = "train") -> float:
        return float(self._data[self._check_split(split)].mean(dtype=np.float64) / 255.0)
