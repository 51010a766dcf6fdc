"""Data sets stored in the user's data folder (imported or fetched), one folder per set.

    <data_home>/<name>/manifest.json   name, source, origin, dim, split sizes, density, sha256
    <data_home>/<name>/data.npz        bit-packed splits (see `packed`)

A set is written into a temporary folder and renamed into place, so a crash never leaves half a set.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bihm_app.data.integrity import fsync_dir, sha256_file, atomic_write_bytes
from bihm_app.data.packed import SPLITS, pack_splits, write_npz
from bihm_app.data.paths import data_home
from bihm_app.data.validate import check_labels, check_name, check_splits
from bihm_app.errors import DataError
from bihm_app.file_modes import default_dir_mode
from bihm_app.safe_files import FileProblem, read_capped

FORMAT = "bihm-dataset"
VERSION = 1
DATA_FILE = "data.npz"
MANIFEST_FILE = "manifest.json"


def set_dir(name: str) -> Path:
    return data_home() / name


def read_manifest(name: str) -> dict | None:
    """The manifest of a stored set, or None when no set of that name is stored."""
    path = set_dir(name) / MANIFEST_FILE
    if not os.path.lexists(path):
        return None
    try:
        manifest = json.loads(read_capped(path, 1 << 20).decode("utf-8"))
    except FileProblem as exc:
        raise DataError(f"data set '{name}': manifest {path} {exc}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"data set '{name}': manifest {path} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"data set '{name}': {path} is not a bihm data-set manifest")
    for key in ("dim", "splits", "sha256", "file"):
        if key not in manifest:
            raise DataError(f"data set '{name}': manifest {path} lacks '{key}'")
    return manifest


def stored_names() -> list[str]:
    """Names of the sets in the data folder that have a manifest."""
    home = data_home()
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file())


def save_dataset(
    name: str,
    splits: Mapping[str, np.ndarray],
    *,
    labels: Mapping[str, np.ndarray | None] | None = None,
    source: str,
    origin: str,
    description: str = "",
    image_shape: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate and store a set under `data_home()/name`; return its folder.

    Validation happens before anything is written; the folder appears complete or not at all.
    """
    from bihm_app.data.builtin import BUILTINS

    check_name(name)
    if name in BUILTINS:
        raise DataError(f"data set name '{name}' is taken by a built-in data set; choose another --name")
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise DataError(f"{origin}: missing split(s) {', '.join(missing)}")
    clean = check_splits({s: splits[s] for s in SPLITS}, origin)
    clean_labels = check_labels(labels or {}, clean, origin)
    dim = next(iter(clean.values())).shape[1]
    if image_shape is not None and int(np.prod(image_shape)) != dim:
        raise DataError(f"{origin}: image shape {image_shape} does not match dimension {dim}")
    final = set_dir(name)
    if final.exists() and not overwrite:
        raise DataError(f"data set '{name}' already exists in {final.parent}; pass --force to replace it")

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=final.parent))
    try:
        write_npz(tmp / DATA_FILE, pack_splits(clean, clean_labels))
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "description": description or f"{source} from {origin}",
            "source": source,
            "origin": origin,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "dim": int(dim),
            "image_shape": list(image_shape) if image_shape else None,
            "splits": {s: int(clean[s].shape[0]) for s in SPLITS},
            "density": round(float(clean["train"].mean(dtype=np.float64)), 6),
            "labels": bool(clean_labels),
            "file": DATA_FILE,
            "sha256": sha256_file(tmp / DATA_FILE),
        }
        atomic_write_bytes(tmp / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
        os.chmod(tmp, default_dir_mode())  # mkdtemp creates 0700: what mkdir() would give (0777 & ~umask)
        if final.exists():
            trash = final.with_name(f".{name}.old-{os.getpid()}")
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_dataset(name: str) -> None:
    """Delete a stored (imported or fetched) set."""
    check_name(name)
    folder = set_dir(name)
    if not (folder / MANIFEST_FILE).is_file():
        raise DataError(f"data set '{name}' is not stored in {folder.parent}")
    shutil.rmtree(folder)
