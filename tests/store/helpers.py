"""Builders shared by the store tests: small real checkpoints and file surgery helpers."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch

from bihm_app.engine.model import BiHM, ModelConfig, make_generator
from bihm_app.store.seal import SEAL_SIZE, write_seal

SMALL = ModelConfig(12, (6, 3))


def make_arrays(cfg: ModelConfig = SMALL, seed: int = 0, adam: bool = True) -> dict[str, np.ndarray]:
    """Parameters of a freshly initialised BiHM plus Adam-like state, RNG state and scalars."""
    model = BiHM(cfg, generator=make_generator(seed))
    arrays = {"params/" + k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(seed)
    if adam:
        for i, (k, v) in enumerate(model.state_dict().items()):
            arrays[f"optim/state.{i}.exp_avg"] = rng.standard_normal(v.shape).astype(np.float32)
            arrays[f"optim/state.{i}.exp_avg_sq"] = rng.random(v.shape).astype(np.float32)
            arrays[f"optim/state.{i}.step"] = np.float32(17)
    arrays["rng/train"] = torch.Generator().manual_seed(seed).get_state().numpy()
    arrays["rng/numpy"] = rng.integers(0, 2**63 - 1, size=4, dtype=np.int64)
    arrays["optim/lr"] = np.float64(1e-3)
    return arrays


def make_meta(cfg: ModelConfig = SMALL, epoch: int = 3, step: int = 120, **train) -> dict:
    hist_epochs = list(range(1, epoch + 1))
    return {
        "config": {"model": cfg.to_dict(), "train": {"method": "bihm", "K": 10, "lr": 1e-3, **train}},
        "data": {"name": "bars", "sha256": "0" * 64},
        "progress": {"epoch": epoch, "step": step, "best_epoch": epoch},
        "history": {
            "epoch": hist_epochs,
            "valid_log_ptilde": [-20.0 + e for e in hist_epochs],
            "valid_log_ptilde_se": [0.5] * epoch,
            "valid_log_p": [float("nan")] + [-19.0 + e for e in hist_epochs[1:]],
            "valid_log_p_se": [float("nan")] + [0.25] * (epoch - 1),
            "log_z2": [0.1 * e for e in hist_epochs],
            "log_z2_se": [0.01] * epoch,
        },
    }


def reseal(path: Path) -> None:
    """Recompute the seal after an edit (simulates a consistent file with wrong contents)."""
    write_seal(path)


def edit_attrs(path: Path, seal: bool = True, **attrs) -> None:
    """Set (or delete, with value None) root attributes, then optionally reseal."""
    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            if v is None:
                del f.attrs[k]
            else:
                f.attrs[k] = v
    if seal:
        reseal(path)


def edit_meta(path: Path, fn, seal: bool = True) -> None:
    """Apply ``fn(meta) -> meta`` to the meta JSON."""
    with h5py.File(path, "r") as f:
        meta = json.loads(f.attrs["meta_json"])
    edit_attrs(path, seal=seal, meta_json=json.dumps(fn(meta)))


def chunk_offset(path: Path, name: str) -> int:
    """Byte offset of the first chunk of dataset ``name`` in the file."""
    with h5py.File(path, "r") as f:
        return int(f[name].id.get_chunk_info(0).byte_offset)


def flip_byte(path: Path, offset: int, mask: int = 0x40) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ mask]))


__all__ = ["SEAL_SIZE", "SMALL", "make_arrays", "make_meta", "reseal", "edit_attrs", "edit_meta", "chunk_offset",
           "flip_byte"]
