"""Find, verify and load data sets by name: built-in assets first, then the user's data folder."""

from __future__ import annotations

import json
from pathlib import Path


from bihm_app.data import local
from bihm_app.data.builtin import BUILTINS, BuiltinSpec
from bihm_app.data.dataset import Dataset, DatasetInfo, DynamicDataset, _readonly
from bihm_app.data.integrity import verify_sha256
from bihm_app.data.packed import SPLITS, read_npz, unpack_splits
from bihm_app.data.paths import ASSETS_MANIFEST, asset_candidates, assets_dir
from bihm_app.data.remote import REMOTE
from bihm_app.errors import DataError

# Loaded data sets, keyed by name and the identity (path, sha256) of their file.
_loaded: dict[tuple[str, str, str], Dataset] = {}


def _assets_manifest() -> tuple[Path, dict]:
    folder = assets_dir()
    if folder is None:
        looked = ", ".join(str(p) for p in asset_candidates())
        raise DataError(f"built-in data assets not found (looked in {looked}); reinstall bihm-app")
    path = folder / ASSETS_MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"assets manifest {path} is unreadable ({exc})") from None
    if manifest.get("format") != "bihm-assets" or "files" not in manifest or "datasets" not in manifest:
        raise DataError(f"assets manifest {path} is not a bihm assets manifest")
    return folder, manifest


def _load_builtin(spec: BuiltinSpec) -> Dataset:
    folder, manifest = _assets_manifest()
    entry = manifest["files"].get(spec.asset)
    if entry is None:
        raise DataError(f"data set '{spec.name}': {spec.asset} is not listed in {folder / ASSETS_MANIFEST}")
    path = folder / spec.asset
    sha = verify_sha256(path, entry["sha256"], f"data set '{spec.name}'")
    key = (spec.name, str(path), sha)
    if key in _loaded:
        return _loaded[key]
    arrays = read_npz(path, f"data set '{spec.name}'")
    common = dict(
        name=spec.name, sha256=sha, image_shape=spec.image_shape, description=spec.description,
        source="embedded", location=str(path),
    )
    if spec.dynamic:
        grey = {s: _readonly(arrays[f"x_{s}"]) for s in SPLITS}
        labels = {s: _readonly(arrays[f"y_{s}"]) for s in SPLITS if f"y_{s}" in arrays}
        ds: Dataset = DynamicDataset(dim=grey["train"].shape[1], _data=grey, _labels=labels, **common)
    else:
        splits, labels = unpack_splits(arrays, f"data set '{spec.name}'")
        ds = Dataset(
            dim=splits["train"].shape[1],
            _data={s: _readonly(x) for s, x in splits.items()},
            _labels={s: _readonly(y) for s, y in labels.items()},
            **common,
        )
    _loaded[key] = ds
    return ds


def _load_local(name: str, manifest: dict) -> Dataset:
    folder = local.set_dir(name)
    path = folder / manifest["file"]
    sha = verify_sha256(path, manifest["sha256"], f"data set '{name}'")
    key = (name, str(path), sha)
    if key in _loaded:
        return _loaded[key]
    splits, labels = unpack_splits(read_npz(path, f"data set '{name}'"), f"data set '{name}'")
    if splits["train"].shape[1] != manifest["dim"]:
        raise DataError(f"data set '{name}': {path} has dimension {splits['train'].shape[1]}, manifest says {manifest['dim']}")
    shape = manifest.get("image_shape")
    ds = Dataset(
        name=name, dim=int(manifest["dim"]), sha256=sha, image_shape=tuple(shape) if shape else None,
        description=manifest.get("description", ""), source=manifest.get("source", "imported"),
        location=str(path),
        _data={s: _readonly(x) for s, x in splits.items()},
        _labels={s: _readonly(y) for s, y in labels.items()},
    )
    _loaded[key] = ds
    return ds


def known_names() -> list[str]:
    """Built-in, stored and fetchable names, in catalogue order."""
    names = list(BUILTINS)
    names += [n for n in local.stored_names() if n not in names]
    names += [n for n in REMOTE if n not in names]
    return names


def fetch_hint(name: str) -> str:
    """What a set that is listed but not on this machine needs."""
    return f"needs `bihm data fetch {name}`"


def missing_reason(name: str) -> str | None:
    """Why ``name`` cannot be trained on here without another step, in one line, or None when it is
    present: unknown names, fetchable sets not downloaded yet (:func:`fetch_hint`) and built-in sets
    whose file is missing. Cheap (no checksum, no loading): the form's data list and the pre-launch
    checks call it; loading still verifies the file."""
    if name in BUILTINS:
        folder = assets_dir()
        if folder is None or not (folder / BUILTINS[name].asset).is_file():
            return f"data set '{name}': its built-in file is missing; reinstall bihm-app"
        return None
    if _plausible(name) and name in local.stored_names():
        return None
    if name in REMOTE:
        if REMOTE[name].note:
            return f"data set '{name}' is not on this machine: {REMOTE[name].note}"
        return f"data set '{name}' is not downloaded yet: it {fetch_hint(name)}"
    return (f"unknown data set '{name}' (known: {', '.join(known_names())}); "
            f"add your own with `bihm data import FILE --name {name}`")  # fmt: skip


def load_dataset(name: str) -> Dataset:
    """Load a data set by name (verifying its SHA-256); `DataError` if unknown, missing or corrupt."""
    if name in BUILTINS:
        return _load_builtin(BUILTINS[name])
    manifest = local.read_manifest(name) if _plausible(name) else None
    if manifest is not None:
        return _load_local(name, manifest)
    if name in REMOTE:
        raise DataError(f"data set '{name}' is not downloaded yet; run `bihm data fetch {name}`")
    raise DataError(
        f"unknown data set '{name}' (known: {', '.join(known_names())}); "
        f"add your own with `bihm data import FILE --name {name}`"
    )


def _plausible(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


def check_compatible(ds: Dataset, n_visible: int, context: str) -> None:
    """Raise `DataError` unless the data dimension equals the model's visible size."""
    if int(n_visible) != ds.dim:
        raise DataError(
            f"{context}: data set '{ds.name}' has dimension {ds.dim}, but the model has {n_visible} visible units"
        )


def _ordered(sizes: dict) -> dict[str, int]:
    return {s: int(sizes[s]) for s in SPLITS if s in sizes}


def _builtin_info(spec: BuiltinSpec) -> DatasetInfo:
    try:
        folder, manifest = _assets_manifest()
    except DataError as exc:
        return DatasetInfo(spec.name, spec.description, {}, None, None, None, False, False, "embedded",
                           spec.image_shape, spec.dynamic, str(exc))
    meta = manifest["datasets"].get(spec.name, {})
    path = folder / spec.asset
    present, verified, problem = path.is_file(), False, None
    if present:
        try:
            verify_sha256(path, manifest["files"][spec.asset]["sha256"], f"data set '{spec.name}'")
            verified = True
        except (DataError, KeyError) as exc:
            problem = str(exc)
    else:
        problem = f"file {path} is missing"
    return DatasetInfo(
        spec.name, spec.description, _ordered(meta.get("splits", {})), meta.get("dim"), meta.get("density"),
        str(path), present, verified, "embedded", spec.image_shape, spec.dynamic, problem,
    )


def _local_info(name: str) -> DatasetInfo:
    folder = local.set_dir(name)
    try:
        manifest = local.read_manifest(name) or {}
    except DataError as exc:
        return DatasetInfo(name, "", {}, None, None, str(folder), True, False, "imported", problem=str(exc))
    path = folder / manifest["file"]
    verified, problem = False, None
    try:
        verify_sha256(path, manifest["sha256"], f"data set '{name}'")
        verified = True
    except DataError as exc:
        problem = str(exc)
    shape = manifest.get("image_shape")
    return DatasetInfo(
        name, manifest.get("description", ""), _ordered(manifest["splits"]), manifest["dim"], manifest.get("density"),
        str(path), True, verified, manifest.get("source", "imported"), tuple(shape) if shape else None, False, problem,
    )


def _remote_info(name: str) -> DatasetInfo:
    r = REMOTE[name]
    sizes = dict(zip(SPLITS, r.sizes)) if r.sizes else {}
    hint = r.note or f"not downloaded; run `bihm data fetch {name}`"
    return DatasetInfo(name, r.description, sizes, r.dim, None, None, False, False, "fetched", r.image_shape,
                       False, hint)


def list_datasets() -> list[DatasetInfo]:
    """Every data set bihm knows: built-in (verified), stored in the data folder, and fetchable."""
    infos = [_builtin_info(spec) for spec in BUILTINS.values()]
    stored = local.stored_names()
    infos += [_local_info(n) for n in stored if n not in BUILTINS]
    infos += [_remote_info(n) for n in REMOTE if n not in stored]
    return infos


def clear_cache() -> None:
    """Forget loaded data sets (tests; after replacing files in place)."""
    _loaded.clear()


__all__ = ["load_dataset", "list_datasets", "check_compatible", "known_names", "clear_cache", "missing_reason", "fetch_hint"]
