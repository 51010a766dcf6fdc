"""Data sets: the embedded assets, the user's imported/fetched sets, validation and batching.

    from bihm_app.data import load_dataset, list_datasets, batches
    ds = load_dataset("bmnist")                       # verified against its SHA-256
    x = ds.get("train")                               # (50000, 784) uint8 0/1
    for xb in batches(ds, "train", 100, epoch=e, seed=s): ...   # (100, 784) float32 tensors
"""

from bihm_app.data.batching import as_tensor, batches, num_batches, shuffle_order
from bihm_app.data.builtin import BUILTINS, DEFAULT_DATASET
from bihm_app.data.dataset import Dataset, DatasetInfo, DynamicDataset
from bihm_app.data.paths import data_home
from bihm_app.data.registry import check_compatible, known_names, list_datasets, load_dataset

__all__ = [
    "BUILTINS",
    "DEFAULT_DATASET",
    "Dataset",
    "DatasetInfo",
    "DynamicDataset",
    "as_tensor",
    "batches",
    "check_compatible",
    "data_home",
    "known_names",
    "list_datasets",
    "load_dataset",
    "num_batches",
    "shuffle_order",
]
