"""What a checkpoint must hold — checked by the writer before saving and by the reader after reading.

* names: ``group/name`` arrays (``params/p_weights.0``, ``optim/…``, ``rng/train``), numeric dtypes;
* the meta: the sections ``config`` (with ``model``), ``data``, ``progress``, ``history`` and their types;
* the parameters: exactly the shapes the model config needs, finite (as the optimizer state);
* ``params_sha256``: the digest that identifies the parameters (eval caches, fine-tuning's parent).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bihm_app.errors import CheckpointError

__all__ = ["SCHEMA", "SCHEMA_VERSION", "READABLE_VERSIONS", "REQUIRED_META", "NUMERIC_KINDS", "validate_meta",
           "shape_problem", "prepare_arrays", "array_problem", "nonfinite", "array_sha256", "digest_of", "params_digest"]  # fmt: skip

SCHEMA = "bihm-checkpoint"
#: Version 2 (this writer): v1 without the meta/manifest/per-dataset SHA-256 attributes that only
#: repeated the seal (docs/checkpoint-format.md). v1 files load as before; their extra attributes
#: are ignored.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Meta sections every checkpoint has (each a JSON object).
REQUIRED_META = ("config", "data", "progress", "history")
#: Array kinds a checkpoint may hold: bool, signed/unsigned integers, floats, complex.
NUMERIC_KINDS = "biufc"
_NAME_PART = re.compile(r"^[A-Za-z0-9_.+\-]+$")


def one_line(exc: BaseException | str) -> str:
    """An exception's text on one line of at most 300 characters."""
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def json_default(o: Any):
    """JSON for the numpy values, paths and sets a meta may carry."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


# -- identity --------------------------------------------------------------------------------------
def array_sha256(a: np.ndarray) -> str:
    """SHA-256 of one array over ``"<dtype.str>|<d0>x<d1>…|"`` followed by its C-order bytes."""
    a = np.asarray(a, order="C")
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}|{'x'.join(str(n) for n in a.shape)}|".encode())
    h.update(a.reshape(-1).view(np.uint8) if a.size else b"")
    return h.hexdigest()


def digest_of(hashes: Mapping[str, str]) -> str:
    """SHA-256 over ``"<name>\\0<sha256>\\n"`` for every entry, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\n".encode())
    return h.hexdigest()


def params_digest(params: Mapping[str, np.ndarray]) -> str:
    """The ``params_sha256`` of a parameter dict with bare names (``p_weights.0`` …): equal to the
    attribute a checkpoint of these parameters carries, so a model in memory can be matched to its file."""
    return digest_of({f"params/{k}": array_sha256(np.asarray(v)) for k, v in params.items()})


# -- the meta --------------------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _model_problem(model: Any) -> str | None:
    if not isinstance(model, dict):
        return "meta config has no 'model' section"
    nv, layers = model.get("n_visible"), model.get("layers")
    if not _is_int(nv) or nv < 1:
        return f"meta config.model.n_visible is {nv!r}, not a positive integer"
    if not isinstance(layers, list) or not layers or not all(_is_int(n) and n >= 1 for n in layers):
        return f"meta config.model.layers is {layers!r}, not a list of positive integers"
    labels = model.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not _is_int(labels.get("n_classes")) or labels["n_classes"] < 2:
            return f"meta config.model.labels is {labels!r}, not a label layer with n_classes >= 2"
        if labels.get("placement") not in ("top", "bottom"):
            return f"meta config.model.labels.placement is {labels.get('placement')!r}, not top or bottom"
    return None


def validate_meta(meta: Any) -> str | None:
    """Why ``meta`` is not a valid checkpoint meta, or None if it is (a light, torch-free check)."""
    if not isinstance(meta, dict):
        return f"meta is a {type(meta).__name__}, not a JSON object"
    for key in REQUIRED_META:
        if key not in meta:
            return f"meta has no '{key}' section"
        if not isinstance(meta[key], dict):
            return f"meta '{key}' is not a JSON object"
    problem = _model_problem(meta["config"].get("model"))
    if problem is not None:
        return problem
    if not isinstance(meta["data"].get("name"), str):
        return "meta data.name is missing or not a string"
    sha = meta["data"].get("sha256")
    if sha is not None and not isinstance(sha, str):
        return "meta data.sha256 is not a string"
    for key in ("epoch", "step"):
        v = meta["progress"].get(key)
        if not _is_int(v) or v < 0:
            return f"meta progress.{key} is {v!r}, not a non-negative integer"
    problem = _train_problem(meta["config"]) or _progress_problem(meta["progress"])
    if problem is not None:
        return problem
    if "lr" in meta and not (_is_number(meta["lr"]) and math.isfinite(meta["lr"]) and meta["lr"] >= 0):
        return f"meta lr is {_short(meta['lr'])}, not a finite non-negative number"
    for key, v in meta["history"].items():
        if not isinstance(v, list):
            return f"meta history.{key} is not a list"
        bad = next((x for x in v if x is not None and not _is_number(x)), _OK)
        if bad is not _OK:
            return f"meta history.{key} holds {_short(bad)}, not a number"
    return None


_OK = object()
#: ``config.train`` fields checked when present: integers with their least value.
_TRAIN_INTS = {"K": 1, "batch_size": 1, "epochs": 0, "patience": 0, "valid_K": 1, "valid_max": 0,
               "z_samples": 0, "z_every": 0, "max_rollbacks": 0}  # fmt: skip
#: ``progress`` fields checked when present: integers with their least value.
_PROGRESS_INTS = {"batch": 0, "best_epoch": -1, "bad_epochs": 0, "rollbacks": 0}  # best_epoch -1: none yet


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _train_problem(config: dict) -> str | None:
    """Why ``config.train`` (when present) has a field of the wrong type or range, or None."""
    train = config.get("train")
    if train is None:
        return None
    if not isinstance(train, dict):
        return f"meta config.train is {_short(train)}, not a JSON object"
    for key in ("lr", "l1"):
        v = train.get(key)
        if v is not None and not (_is_number(v) and math.isfinite(v) and v >= 0):
            return f"meta config.train.{key} is {_short(v)}, not a finite non-negative number"
    for key, least in _TRAIN_INTS.items():
        v = train.get(key)
        if v is not None and not (_is_int(v) and v >= least):
            return f"meta config.train.{key} is {_short(v)}, not an integer >= {least}"
    for key in ("method", "precision", "l1_per"):
        v = train.get(key)
        if v is not None and not isinstance(v, str):
            return f"meta config.train.{key} is {_short(v)}, not a string"
    return None


def _progress_problem(progress: dict) -> str | None:
    """Why a ``progress`` field other than epoch/step has the wrong type or range, or None."""
    for key, least in _PROGRESS_INTS.items():
        v = progress.get(key)
        if v is not None and not (_is_int(v) and v >= least):
            return f"meta progress.{key} is {_short(v)}, not an integer >= {least}"
    v = progress.get("best_valid")
    if v is not None and not (_is_number(v) and not math.isnan(v)):
        return f"meta progress.best_valid is {_short(v)}, not a number"
    v = progress.get("elapsed")
    if v is not None and not (_is_number(v) and math.isfinite(v) and v >= 0):
        return f"meta progress.elapsed is {_short(v)}, not a finite non-negative number of seconds"
    v = progress.get("finished")
    if v is not None and not isinstance(v, bool):
        return f"meta progress.finished is {_short(v)}, not true or false"
    v = progress.get("stop_reason")
    if v is not None and not isinstance(v, str):
        return f"meta progress.stop_reason is {_short(v)}, not a string"
    return None


# -- the arrays ------------------------------------------------------------------------------------
def _expected_param_shapes(model: dict) -> dict[str, tuple[int, ...]]:
    from bihm_app.engine.model import ModelConfig, parameter_shapes

    cfg = ModelConfig.from_dict(model)
    shapes = parameter_shapes(cfg)
    if model.get("labels") is not None:  # a semi-supervised model: plus the label layer
        from bihm_app.engine.semisup import LabelConfig, label_parameter_shapes

        shapes.update(label_parameter_shapes(cfg, LabelConfig.from_dict(model["labels"])))
    return shapes


def shape_problem(model: dict, shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """Why parameter ``shapes`` (bare names) do not fit the model config, or None."""
    try:
        expected = _expected_param_shapes(model)
    except (ValueError, KeyError, TypeError) as exc:
        return f"meta config.model is invalid ({one_line(exc)})"
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    if missing:
        more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
        return f"parameters missing for layers {model.get('layers')}: {', '.join(missing[:5])}{more}"
    if extra:
        return f"unexpected parameters for layers {model.get('layers')}: {', '.join(extra[:5])}"
    for name in sorted(expected):
        if tuple(shapes[name]) != tuple(expected[name]):
            return (f"parameter {name} has shape {tuple(shapes[name])}, but the config "
                    f"(n_visible={model.get('n_visible')}, layers={model.get('layers')}) needs {tuple(expected[name])}")  # fmt: skip
    return None


def _checked_name(where: str, name: Any) -> str:
    if not isinstance(name, str):
        raise CheckpointError(f"{where}: array name {name!r} is not a string")
    parts = name.split("/")
    if len(parts) < 2 or any(p in ("", ".", "..") or not _NAME_PART.match(p) for p in parts):
        raise CheckpointError(f"{where}: array name {name!r} must look like 'group/name' (letters, digits, _ . + -)")
    return name


def prepare_arrays(where: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays to save as C-order numpy arrays; CheckpointError for a bad name, dtype or nesting."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise CheckpointError(f"{where}: nothing to save (no arrays)")
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        name = _checked_name(where, name)
        if hasattr(value, "detach"):  # a torch tensor slipped through: store its values
            value = value.detach().cpu().numpy()
        a = np.asarray(value)
        if a.dtype.kind not in NUMERIC_KINDS or a.dtype.fields is not None:
            raise CheckpointError(f"{where}: array {name!r} has dtype {a.dtype}, not a numeric dtype")
        out[name] = np.asarray(a, order="C")
    for name in out:
        parts = name.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in out:
                raise CheckpointError(f"{where}: {name!r} would live inside the array {'/'.join(parts[:i])!r}")
    if not any(n.startswith("params/") for n in out):
        raise CheckpointError(f"{where}: no parameters (no array named 'params/…')")
    return out


#: Torch generator states ``rng/train`` may hold: the CPU Mersenne Twister's, a CUDA Philox's.
RNG_STATE_BYTES = (5056, 16)


def array_problem(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> str | None:
    """Why an array ``name`` of ``dtype`` and ``shape`` cannot be what its group needs, or None:
    ``params/`` hold float32 or float64 (not complex, integer or half-precision values a model
    would silently cast), ``optim/`` the same or integers (a step count), ``rng/train`` a 1-D
    uint8 torch generator state."""
    if name.startswith("params/"):
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            return f"has dtype {dtype}, not float32 or float64"
    elif name.startswith("optim/"):  # moments are floats; a step count may be an integer
        if dtype.kind not in "iuf" or dtype.kind == "f" and dtype.itemsize not in (4, 8):
            return f"has dtype {dtype}, not float32, float64 or an integer"
    elif name == "rng/train":
        if dtype != np.uint8 or len(shape) != 1 or shape[0] not in RNG_STATE_BYTES:
            sizes = " or ".join(map(str, RNG_STATE_BYTES))
            return f"is {dtype} of shape {tuple(shape)}, not a torch generator state (uint8 of {sizes} bytes)"
    return None


def nonfinite(arrays: Mapping[str, np.ndarray]) -> str | None:
    """The first parameter or optimizer array holding NaN/inf, described, or None."""
    for name in sorted(arrays):
        a = arrays[name]
        if not name.startswith(("params/", "optim/")) or a.dtype.kind not in "fc" or a.size == 0:
            continue
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            return f"{name} has {bad:,} non-finite value{'s' if bad > 1 else ''} (NaN/inf) of {a.size:,}"
    return None
