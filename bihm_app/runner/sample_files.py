"""Samples saved for later use: ``bihm sample|inpaint|layers --save FILE.npz|FILE.h5``.

One file holds, under the same names in both formats:

=================  ===========  ========================================================
``samples``        (n, D) u8    the binary draws x
``means``          (n, D) f4    their Bernoulli means σ(p(x | h_1))
``h1`` … ``hL``    (n, n_l) u8  every latent layer's final state (chains) or kept sample
``original``       (n, D) u8    inpainting only: the images before masking
``missing``        (D,) bool    inpainting only: the pixels that were resampled
``indices``        (n,) i8      inpainting only: the images' rows in their split
``settings_json``  text         run, checkpoint, data, command, method, K, sweeps, seed, …
=================  ===========  ========================================================

``.npz`` (``numpy.load(path)``, no pickle) or ``.h5`` (HDF5; the settings are also root attributes,
so ``h5dump -A`` shows them). The suffix decides; the file is written atomically.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from bihm_app.errors import ConfigError, DataError
from bihm_app.runner.outputs import check_output

__all__ = ["SAVE_SUFFIXES", "check_save_path", "picture_settings", "inpaint_extra", "save_pictures", "load_samples"]

SAVE_SUFFIXES = (".npz", ".h5")


def check_save_path(path: Path | None) -> Path | None:
    """``path`` if it ends in .npz or .h5 and its folder exists (None stays None); else one line."""
    if path is None:
        return None
    path = Path(path)
    if path.suffix.lower() not in SAVE_SUFFIXES:
        raise ConfigError(f"--save {path}: the file must end in .npz or .h5 (got {path.suffix or 'no suffix'!r})")
    if not path.parent.is_dir():
        raise ConfigError(f"--save {path}: folder {path.parent} does not exist")
    return check_output(path, "--save")


def picture_settings(lm, command: str, run: str | None = None, config=None, **more) -> dict:
    """What made the pictures: the model (run, checkpoint, data), the command and its options."""
    from bihm_app import __version__

    meta = lm.meta or {}
    settings = {
        "command": command, "run": run, "checkpoint": None if lm.path is None else str(lm.path),
        "data": lm.data_name, "data_sha256": (meta.get("data") or {}).get("sha256"),
        "epoch": (meta.get("progress") or {}).get("epoch"), "layers": [int(n) for n in lm.model.sizes[1:]],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "bihm_version": __version__,
    }  # fmt: skip
    if config is not None:  # only the settings the method uses
        settings.update(method=config.method, seed=config.seed)
        if config.method != "ancestral":
            settings.update(K=config.K, inner_K=config.inner_K)
        if config.method == "gibbs":
            settings.update(sweeps=config.steps, keep_current=config.keep_current)
    settings.update(more)
    return settings


def inpaint_extra(x_true, missing, indices) -> dict[str, np.ndarray]:
    """The inpainting inputs saved with its completions: the images, the missing pixels, their rows."""
    return {"original": np.asarray(x_true).round().astype(np.uint8), "missing": np.asarray(missing, dtype=bool),
            "indices": np.asarray(indices, dtype=np.int64)}  # fmt: skip


def _arrays(pics, extra: dict | None) -> dict[str, np.ndarray]:
    arrays = {"samples": np.asarray(pics.x).round().astype(np.uint8), "means": np.asarray(pics.means, dtype=np.float32)}
    for i, h in enumerate(pics.states, start=1):
        arrays[f"h{i}"] = np.asarray(h).round().astype(np.uint8)
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v)
    return arrays


def _npz_bytes(arrays: dict[str, np.ndarray], settings_json: str) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, settings_json=np.array(settings_json), **arrays)
    return buf.getvalue()


def _h5_bytes(arrays: dict[str, np.ndarray], settings: dict, settings_json: str) -> memoryview:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["schema"] = "bihm-samples"
        f.attrs["settings_json"] = settings_json
        for k, v in settings.items():
            if v is not None:
                f.attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v)
        for k, a in arrays.items():
            f.create_dataset(k, data=a, compression="gzip" if a.ndim and a.size else None)
    return buf.getbuffer()


def save_pictures(path: Path, pics, settings: dict, extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``pics`` (:class:`~bihm_app.runner.pictures.Pictures`), their ``settings`` and any
    ``extra`` arrays to ``path`` (.npz or .h5) atomically; returns the path."""
    from bihm_app.store.atomic import write_file_atomic

    path = check_save_path(path)
    arrays = _arrays(pics, extra)
    text = json.dumps({**settings, "title": pics.title}, default=str)
    if path.suffix.lower() == ".npz":
        produce = lambda: _npz_bytes(arrays, text)  # noqa: E731
    else:
        produce = lambda: _h5_bytes(arrays, {**settings, "title": pics.title}, text)  # noqa: E731
    write_file_atomic(path, produce, f"--save {path}", error=ConfigError)
    return path


def load_samples(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays by name, settings) of a file written by :func:`save_pictures`.

    Read as untrusted, like a data file (:mod:`bihm_app.data.readers`): a regular file only (never
    blocks on a FIFO), no HDF5 links, every declared size checked against the file and the memory
    before it is read; any problem is a DataError of one line naming the file."""
    from bihm_app.data.limits import ReadLimits
    from bihm_app.data.readers import read_hdf5_arrays, read_npz_arrays

    path = Path(path)
    limits = ReadLimits.default()
    if path.suffix.lower() == ".npz":
        arrays = read_npz_arrays(path, limits)
        text = arrays.pop("settings_json", None)
        text = str(text) if text is not None and text.dtype.kind == "U" and text.ndim == 0 else None
    else:
        arrays = read_hdf5_arrays(path, limits, top_only=True)
        text = _h5_settings(path)
    if text is None:
        raise DataError(f"{path}: not a bihm samples file (no settings_json)")
    try:
        settings = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{path}: damaged settings_json ({type(exc).__name__})") from None
    if not isinstance(settings, dict):
        raise DataError(f"{path}: damaged settings_json (not an object)")
    return arrays, settings


def _h5_settings(path: Path) -> str | None:
    """The ``settings_json`` root attribute of a samples file (checked by the array reader first)."""
    from bihm_app.safe_files import FileProblem, open_hdf5

    try:
        with open_hdf5(path) as f:
            v = f.attrs.get("settings_json")
    except (FileProblem, OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable settings ({' '.join(str(exc).split())[:160]})") from None
    return v.decode(errors="replace") if isinstance(v, bytes) else v if isinstance(v, str) else None
