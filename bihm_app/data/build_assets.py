"""Rebuild the embedded data assets from the verified copies in the shared data folder.

    python -m bihm_app.data.build_assets --source ../shared/data [--out assets]

Checks the sources against their ``SHA256SUMS``, writes one bit-packed (or, for grey MNIST, uint8)
compressed ``.npz`` per data set, reads every asset back and checks that the unpacked arrays equal
the source arrays exactly, then writes ``manifest.json`` (sizes, dimension, density, SHA-256) and
``SHA256SUMS`` (for ``sha256sum -c``). The archives are byte-reproducible (fixed zip timestamps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bihm_app.data.builtin import BUILTINS, BuiltinSpec
from bihm_app.data.integrity import atomic_write_bytes, sha256_file
from bihm_app.data.packed import SPLITS, pack_splits, read_npz, unpack_splits, write_npz
from bihm_app.errors import DataError

MANIFEST_FORMAT = "bihm-assets"
MANIFEST_VERSION = 1


def _check_source_sums(source: Path) -> None:
    sums = source / "SHA256SUMS"
    if not sums.is_file():
        print(f"warning: {sums} not found; source files not checksummed", file=sys.stderr)
        return
    for line in sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = source / name.strip().lstrip("*")
        if path.is_file() and sha256_file(path) != digest:
            raise DataError(f"source {path}: checksum mismatch against {sums}")


def _source_arrays(spec: BuiltinSpec, source: Path):
    """(splits, labels) of the source file, as the asset must reproduce them."""
    arrays = read_npz(source / spec.source, f"source {spec.name}")
    if spec.kind == "grey":
        splits = {s: arrays[f"x_{s}"] for s in SPLITS}
    else:
        splits = {s: arrays[s] for s in SPLITS}
    labels = {s: arrays[f"y_{s}"] for s in SPLITS if f"y_{s}" in arrays}
    for s, x in splits.items():
        if x.dtype != np.uint8 or x.ndim != 2:
            raise DataError(f"source {spec.source}: split {s} is {x.dtype} {x.shape}, expected 2-D uint8")
        if spec.kind == "packed" and x.max(initial=0) > 1:
            raise DataError(f"source {spec.source}: split {s} is not binary")
    return splits, labels


def build_one(spec: BuiltinSpec, source: Path, out: Path) -> dict:
    """Write one asset, verify it round-trips, and return its manifest entry."""
    splits, labels = _source_arrays(spec, source)
    target = out / spec.asset
    if spec.kind == "grey":
        arrays = {f"x_{s}": x for s, x in splits.items()} | {f"y_{s}": y for s, y in labels.items()}
        write_npz(target, arrays)
        back = read_npz(target, spec.asset)
        got_splits = {s: back[f"x_{s}"] for s in SPLITS}
        got_labels = {s: back[f"y_{s}"] for s in SPLITS if f"y_{s}" in back}
        density = float(splits["train"].mean(dtype=np.float64) / 255.0)
    else:
        write_npz(target, pack_splits(splits, labels))
        got_splits, got_labels = unpack_splits(read_npz(target, spec.asset), spec.asset)
        density = float(splits["train"].mean(dtype=np.float64))
    for s in SPLITS:
        if not np.array_equal(got_splits[s], splits[s]):
            raise DataError(f"asset {target}: split {s} does not round-trip")
        if (s in labels) != (s in got_labels) or (s in labels and not np.array_equal(labels[s], got_labels[s])):
            raise DataError(f"asset {target}: labels of split {s} do not round-trip")
    return {
        "file": spec.asset,
        "kind": spec.kind,
        "dim": int(splits["train"].shape[1]),
        "splits": {s: int(splits[s].shape[0]) for s in SPLITS},
        "density": round(density, 6),
        "labels": bool(labels),
        "source": spec.source,
        "source_sha256": sha256_file(source / spec.source),
    }


def build(source: Path, out: Path) -> dict:
    """Build every asset into `out`; return the manifest written there."""
    _check_source_sums(source)
    out.mkdir(parents=True, exist_ok=True)
    datasets = {}
    for spec in BUILTINS.values():
        datasets[spec.name] = build_one(spec, source, out)
        print(f"  {spec.name:10s} -> {spec.asset} ({(out / spec.asset).stat().st_size:,} bytes)")
    files = {}
    for spec in BUILTINS.values():
        path = out / spec.asset
        files[spec.asset] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": files, "datasets": datasets}
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    sums = "".join(f"{files[name]['sha256']}  {name}\n" for name in sorted(files))
    atomic_write_bytes(out / "SHA256SUMS", sums.encode())
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="shared data folder (binarized_mnist.npz, uci/…)")
    default_out = Path(__file__).resolve().parent.parent.parent / "assets"
    parser.add_argument("--out", type=Path, default=default_out, help=f"assets folder (default {default_out})")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.source, args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    total = sum(f["bytes"] for f in manifest["files"].values())
    print(f"wrote {len(manifest['files'])} assets to {args.out}: {total:,} bytes; all arrays round-trip exactly")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
