"""The embedded data sets: shapes and densities as documented, checksums, dynamic binarization."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bihm_app.data import check_compatible, list_datasets, load_dataset
from bihm_app.data.builtin import BUILTINS
from bihm_app.data.dataset import bernoulli_k255
from bihm_app.data.integrity import sha256_file
from bihm_app.data.paths import assets_dir
from bihm_app.data.registry import clear_cache
from bihm_app.errors import DataError

from .conftest import SHARED

# The table of shared/data/README.md (density = train mean for bmnist, README value otherwise).
EXPECTED = {
    "bmnist": (784, (50000, 10000, 10000), 0.13056, (28, 28), True),
    "mnist-dyn": (784, (50000, 10000, 10000), 0.1306, (28, 28), True),
    "adult": (123, (5000, 1414, 26147), 0.113, None, False),
    "connect4": (126, (16000, 4000, 47557), 0.333, None, False),
    "dna": (180, (1400, 600, 1186), 0.253, None, False),
    "mushrooms": (112, (2000, 500, 5624), 0.188, None, False),
    "nips": (500, (400, 100, 1240), 0.367, None, False),
}


def test_every_builtin_is_documented():
    assert set(BUILTINS) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_loads_with_documented_shape_and_density(name):
    dim, sizes, density, image_shape, has_labels = EXPECTED[name]
    ds = load_dataset(name)
    assert ds.name == name and ds.dim == dim and ds.image_shape == image_shape
    assert ds.split_names == ("train", "valid", "test")
    assert tuple(ds.size(s) for s in ds.split_names) == sizes
    for s in ds.split_names:
        x = ds.get(s)
        assert x.dtype == np.uint8 and x.shape == (ds.size(s), dim)
        assert set(np.unique(x)) <= {0, 1}
        y = ds.labels(s)
        assert (y is not None) == has_labels
        if has_labels:
            assert y.dtype == np.uint8 and y.shape == (ds.size(s),) and y.max() <= 9
    all_rows = np.concatenate([ds.get(s) for s in ds.split_names])
    tol = 0.002 if name != "mnist-dyn" else 0.003
    assert abs(ds.get("train").mean() - density) < tol or abs(all_rows.mean() - density) < tol
    assert ds.dynamic == (name == "mnist-dyn")


def test_sha256_is_the_asset_digest_and_matches_sha256sums():
    folder = assets_dir()
    sums = dict(line.split()[::-1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    manifest = json.loads((folder / "manifest.json").read_text())
    for spec in BUILTINS.values():
        ds = load_dataset(spec.name)
        assert ds.sha256 == sums[spec.asset] == manifest["files"][spec.asset]["sha256"]
        assert ds.sha256 == sha256_file(folder / spec.asset)


def test_arrays_are_read_only_and_cached():
    ds = load_dataset("dna")
    assert load_dataset("dna") is ds
    with pytest.raises(ValueError):
        ds.get("train")[0, 0] = 1


@pytest.mark.skipif(not (SHARED / "binarized_mnist.npz").is_file(), reason="shared source data not present")
def test_bmnist_asset_equals_source_arrays():
    src = np.load(SHARED / "binarized_mnist.npz")
    ds = load_dataset("bmnist")
    for s in ds.split_names:
        assert np.array_equal(ds.get(s), src[s])
        assert np.array_equal(ds.labels(s), src[f"y_{s}"])


@pytest.mark.skipif(not (SHARED / "uci" / "dna.npz").is_file(), reason="shared source data not present")
def test_build_assets_is_byte_reproducible(tmp_path):
    from bihm_app.data.build_assets import build_one

    entry = build_one(BUILTINS["dna"], SHARED, tmp_path)
    assert entry["splits"] == {"train": 1400, "valid": 600, "test": 1186}
    assert sha256_file(tmp_path / "dna.npz") == load_dataset("dna").sha256


# ---- mnist-dyn -------------------------------------------------------------------------------

def test_dynamic_train_draw_depends_on_seed_and_epoch_reproducibly():
    ds = load_dataset("mnist-dyn")
    a = ds.get("train", epoch=3, seed=7)
    assert np.array_equal(a, ds.get("train", epoch=3, seed=7))
    assert not np.array_equal(a, ds.get("train", epoch=4, seed=7))
    assert not np.array_equal(a, ds.get("train", epoch=3, seed=8))
    grey = ds.grey("train")
    assert not a[grey == 0].any()  # p = 0 never fires
    assert a[grey == 255].all()  # p = 1 always fires
    assert abs(a.mean() - grey.mean() / 255.0) < 1e-3


def test_dynamic_eval_splits_are_one_fixed_draw():
    ds = load_dataset("mnist-dyn")
    v = ds.get("valid", epoch=0, seed=0)
    assert np.array_equal(v, ds.get("valid", epoch=5, seed=99))
    assert not np.array_equal(ds.get("test"), (ds.grey("test") > 127).astype(np.uint8))


def test_bernoulli_k255_is_exact_per_intensity():
    k = np.repeat(np.arange(256, dtype=np.uint8), 4000).reshape(256, 4000)
    x = bernoulli_k255(k, np.random.default_rng(0)).astype(np.float64)
    freq = x.mean(axis=1)
    p = np.arange(256) / 255.0
    se = np.sqrt(p * (1 - p) / 4000) + 1e-12
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-9)
    assert freq[0] == 0.0 and freq[255] == 1.0


# ---- errors and catalogue ---------------------------------------------------------------------

def test_unknown_name_is_one_line_error():
    with pytest.raises(DataError, match="unknown data set 'nope'") as e:
        load_dataset("nope")
    assert "\n" not in str(e.value)


def test_fetchable_set_not_downloaded_points_to_fetch():
    with pytest.raises(DataError, match="bihm data fetch ocr_letters"):
        load_dataset("ocr_letters")


def test_check_compatible():
    ds = load_dataset("dna")
    check_compatible(ds, 180, "resume run a")
    with pytest.raises(DataError, match=r"resume run a: data set 'dna' has dimension 180, but the model has 784"):
        check_compatible(ds, 784, "resume run a")


def _copy_assets(tmp_path, corrupt: str | None = None):
    src = assets_dir()
    dst = tmp_path / "assets"
    dst.mkdir()
    for name in ("manifest.json", "SHA256SUMS", "dna.npz", "nips.npz"):
        shutil.copy(src / name, dst / name)
    if corrupt:
        data = bytearray((dst / corrupt).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (dst / corrupt).write_bytes(bytes(data))
    return dst


def test_corrupt_asset_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIHM_ASSETS_DIR", str(_copy_assets(tmp_path, corrupt="dna.npz")))
    clear_cache()
    with pytest.raises(DataError, match="data set 'dna': checksum mismatch"):
        load_dataset("dna")
    assert load_dataset("nips").dim == 500
    infos = {i.name: i for i in list_datasets()}
    assert infos["dna"].present and not infos["dna"].verified and "checksum" in infos["dna"].problem
    assert infos["nips"].verified
    assert not infos["bmnist"].present  # not copied


def test_missing_assets_folder_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BIHM_ASSETS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="built-in data assets not found"):
        load_dataset("bmnist")


def test_list_datasets_shows_builtins_verified_and_fetchables_absent():
    infos = {i.name: i for i in list_datasets()}
    for name in EXPECTED:
        i = infos[name]
        assert i.present and i.verified and i.source == "embedded" and i.problem is None
        assert i.dim == EXPECTED[name][0] and tuple(i.splits.values()) == EXPECTED[name][1]
        assert i.splits and list(i.splits) == ["train", "valid", "test"]
    for name in ("ocr_letters", "rcv1", "web", "caltech101"):
        assert not infos[name].present and infos[name].source == "fetched"
