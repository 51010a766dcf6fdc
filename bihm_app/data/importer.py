"""Import a user's file as a named data set: read, split (seeded) when needed, validate, store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bihm_app.data.builtin import BUILTINS
from bihm_app.data.limits import ReadLimits
from bihm_app.data.local import save_dataset, set_dir
from bihm_app.data.packed import SPLITS
from bihm_app.data.readers import RawData, read_file
from bihm_app.data.validate import check_name, check_splits
from bihm_app.errors import DataError

_SPLIT_TAG = 0x73706C74  # "splt"


@dataclass(frozen=True)
class SplitPlan:
    """How to carve missing valid/test splits out of the rows available ("all" or "train")."""

    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def check(self) -> None:
        for label, f in (("--valid-fraction", self.valid_fraction), ("--test-fraction", self.test_fraction)):
            if not 0.0 <= f < 1.0:
                raise DataError(f"{label} must be in [0, 1), got {f}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise DataError(
                f"--valid-fraction + --test-fraction must be < 1, got {self.valid_fraction + self.test_fraction:g}"
            )
        if self.seed < 0:
            raise DataError(f"--seed must be >= 0, got {self.seed}")


def split_rows(raw: RawData, plan: SplitPlan, what: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Complete train/valid/test: keep the file's own splits, carve the missing ones (seeded)."""
    plan.check()
    for s, y in raw.labels.items():  # a label per row, before rows are drawn with them
        if s not in raw.splits:
            raise DataError(f"{what}: labels for split '{s}', which has no rows")
        n_rows, n_labels = np.asarray(raw.splits[s]).shape[0], np.asarray(y).reshape(-1).shape[0]
        if n_labels != n_rows:
            raise DataError(f"{what}: split '{s}' has {n_labels:,} labels for {n_rows:,} rows")
    if "all" in raw.splits:
        pool, pool_labels, missing = np.asarray(raw.splits["all"]), raw.labels.get("all"), ["valid", "test"]
        splits: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
    else:
        splits = dict(raw.splits)
        labels = dict(raw.labels)
        missing = [s for s in ("valid", "test") if s not in splits]
        if not missing:
            return splits, labels
        pool, pool_labels = np.asarray(splits.pop("train")), labels.pop("train", None)
    if pool.ndim == 0 or pool.shape[0] == 0:
        raise DataError(f"{what}: has no rows to split")
    n = pool.shape[0]
    fractions = {"valid": plan.valid_fraction, "test": plan.test_fraction}
    counts = {s: int(round(n * fractions[s])) for s in missing}
    for s, c in counts.items():
        if c == 0:
            raise DataError(
                f"{what}: {n} rows with {s} fraction {fractions[s]:g} gives an empty {s} split; "
                f"raise --{s}-fraction or supply a {s} split"
            )
    if n - sum(counts.values()) < 1:
        raise DataError(f"{what}: {n} rows leave no rows for the train split")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([plan.seed, _SPLIT_TAG])))
    order = rng.permutation(n)
    start = 0
    for s in missing:
        idx = np.sort(order[start : start + counts[s]])
        splits[s] = pool[idx]
        if pool_labels is not None:
            labels[s] = np.asarray(pool_labels)[idx]
        start += counts[s]
    rest = np.sort(order[start:])
    splits["train"] = pool[rest]
    if pool_labels is not None:
        labels["train"] = np.asarray(pool_labels)[rest]
    return {s: splits[s] for s in SPLITS}, labels


def _image_shape(raw: RawData) -> tuple[int, int] | None:
    first = np.asarray(next(iter(raw.splits.values())))
    return (int(first.shape[1]), int(first.shape[2])) if first.ndim == 3 else None


def transpose_images(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Column-major flattened images (MATLAB) -> row-major flattened images of `shape`."""
    h, w = shape
    x = np.asarray(x)
    return x.reshape(x.shape[0], w, h).transpose(0, 2, 1).reshape(x.shape[0], h * w)


def store_raw(
    raw: RawData,
    name: str,
    *,
    plan: SplitPlan,
    source: str,
    origin: str,
    description: str = "",
    image_shape: tuple[int, int] | None = None,
    transpose: bool = False,
    expected_dim: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate, split and store `raw` as data set `name`; return its folder."""
    image_shape = image_shape or _image_shape(raw)
    # validate before splitting, so an error names the row as it is in the file
    raw = RawData(check_splits(raw.splits, origin), raw.labels)
    splits, labels = split_rows(raw, plan, origin)
    if transpose and image_shape:
        splits = {s: transpose_images(x, image_shape) for s, x in splits.items()}
    if expected_dim is not None:
        dims = {np.asarray(x).reshape(np.asarray(x).shape[0], -1).shape[1] for x in splits.values()}
        if dims != {expected_dim}:
            raise DataError(f"{origin}: expected dimension {expected_dim}, found {sorted(dims)}")
    return save_dataset(
        name, splits, labels=labels, source=source, origin=origin, description=description,
        image_shape=image_shape, overwrite=overwrite,
    )


def import_file(
    path: Path,
    name: str,
    *,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    fmt: str | None = None,
    overwrite: bool = False,
    max_bytes: int | None = None,
) -> Path:
    """Import `path` as data set `name` in the data folder; return the set's folder.

    ``max_bytes`` caps what the file may make bihm read and allocate (default
    :data:`~bihm_app.data.limits.DEFAULT_MAX_BYTES`, or ``BIHM_MAX_BYTES``).

    Splits present in the file are kept; missing valid/test splits are drawn (seeded) from the
    train rows, or from all rows when the file holds a single array.
    """
    check_name(name)
    if name in BUILTINS:
        raise DataError(f"data set name '{name}' is taken by a built-in data set; choose another --name")
    if set_dir(name).exists() and not overwrite:
        raise DataError(f"data set '{name}' already exists in {set_dir(name).parent}; pass --force to replace it")
    plan = SplitPlan(valid_fraction, test_fraction, seed)
    plan.check()
    path = Path(path)
    raw = read_file(path, fmt, ReadLimits.default(max_bytes))
    return store_raw(raw, name, plan=plan, source="imported", origin=str(path.resolve()), overwrite=overwrite)
