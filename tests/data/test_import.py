"""`import_file`: every format round-trips; every bad input is one clear line and writes nothing."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bihm_app.data import list_datasets, load_dataset
from bihm_app.data.importer import import_file
from bihm_app.data.paths import data_home
from bihm_app.errors import DataError

from .conftest import binary, leftovers, write_mat


def _splits(rng):
    return {"train": binary(rng, 60, 20), "valid": binary(rng, 15, 20), "test": binary(rng, 12, 20)}


def _same_rows(a, b) -> bool:
    return sorted(r.tobytes() for r in a) == sorted(r.tobytes() for r in b)


def _assert_roundtrip(name, splits):
    ds = load_dataset(name)
    assert ds.source == "imported" and ds.dim == 20
    for s, x in splits.items():
        assert np.array_equal(ds.get(s), x)


def test_npz_with_splits_and_labels(tmp_path, rng):
    sp = _splits(rng)
    labels = {f"y_{s}": rng.integers(0, 10, len(x)).astype(np.int64) for s, x in sp.items()}
    np.savez(tmp_path / "d.npz", **sp, **labels)
    import_file(tmp_path / "d.npz", "withlabels")
    _assert_roundtrip("withlabels", sp)
    assert np.array_equal(load_dataset("withlabels").labels("test"), labels["y_test"])


def test_labels_that_do_not_match_the_rows_are_one_line(tmp_path, rng):
    """150 labels for 200 training rows (a file cut short, or labels of another split) raised an
    IndexError traceback while the rows were drawn into splits. Catches the count not being checked
    per split, before any split is carved, with the split named."""
    x = binary(rng, 200, 20)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=rng.integers(0, 3, 150))
    with pytest.raises(DataError, match="split 'train' has 150 labels for 200 rows") as info:
        import_file(tmp_path / "m.npz", "mismatch")
    assert "m.npz" in str(info.value) and not (data_home() / "mismatch").exists()


@pytest.mark.parametrize("names", [("train", "Train"), ("train", "x_train"), ("y_train", "train_labels")])
def test_two_arrays_that_could_be_the_same_split_are_refused_by_name(tmp_path, rng, names):
    """A file holding "train" and "Train" (or "train" and "x_train", or two label arrays of one
    split) was imported from whichever name came first, silently: the other array's rows were
    dropped. Catches a silent choice: one line naming both arrays, nothing imported."""
    x = binary(rng, 100, 20)
    arrays = {"train": x} if names[0].startswith("y") else {}
    arrays.update({n: (rng.integers(0, 3, 100) if n.startswith("y") or "labels" in n else binary(rng, 100, 20)) for n in names})
    np.savez(tmp_path / "dup.npz", **arrays)
    with pytest.raises(DataError, match=f"arrays '{sorted(names)[0]}', '{sorted(names)[1]}' could each be") as info:
        import_file(tmp_path / "dup.npz", "dup")
    assert "dup.npz" in str(info.value) and not (data_home() / "dup").exists()
    with h5py.File(tmp_path / "dup.h5", "w") as f:
        for n, a in arrays.items():
            f[n] = a
    with pytest.raises(DataError, match="could each be"):
        import_file(tmp_path / "dup.h5", "duph5")


def test_npz_single_array_is_split_by_seed(tmp_path, rng):
    x = binary(rng, 200, 20)
    np.savez_compressed(tmp_path / "one.npz", data=x)
    import_file(tmp_path / "one.npz", "one", valid_fraction=0.2, test_fraction=0.1, seed=3)
    ds = load_dataset("one")
    assert (ds.size("train"), ds.size("valid"), ds.size("test")) == (140, 40, 20)
    assert _same_rows(np.concatenate([ds.get(s) for s in ds.split_names]), x)
    import_file(tmp_path / "one.npz", "one-again", valid_fraction=0.2, test_fraction=0.1, seed=3)
    assert np.array_equal(load_dataset("one-again").get("valid"), ds.get("valid"))
    import_file(tmp_path / "one.npz", "other-seed", valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert not np.array_equal(load_dataset("other-seed").get("valid"), ds.get("valid"))


def test_npz_with_train_and_test_only_carves_valid_from_train(tmp_path, rng):
    sp = _splits(rng)
    np.savez(tmp_path / "tt.npz", train=sp["train"], test=sp["test"])
    import_file(tmp_path / "tt.npz", "tt", valid_fraction=0.25)
    ds = load_dataset("tt")
    assert np.array_equal(ds.get("test"), sp["test"])
    assert (ds.size("train"), ds.size("valid")) == (45, 15)
    assert _same_rows(np.concatenate([ds.get("train"), ds.get("valid")]), sp["train"])


def test_npy_bool_images(tmp_path, rng):
    x = rng.random((50, 4, 5)) < 0.5
    np.save(tmp_path / "img.npy", x)
    import_file(tmp_path / "img.npy", "img")
    ds = load_dataset("img")
    assert ds.dim == 20 and ds.image_shape == (4, 5)
    assert _same_rows(np.concatenate([ds.get(s) for s in ds.split_names]), x.reshape(50, 20).astype(np.uint8))


@pytest.mark.parametrize("ext,sep", [(".csv", ","), (".txt", " "), (".txt", "\t"), (".amat", " ")])
def test_text_rows(tmp_path, rng, ext, sep):
    x = binary(rng, 40, 20)
    path = tmp_path / f"rows{ext}"
    path.write_text("\n".join(sep.join(str(v) for v in row) for row in x) + "\n\n")
    import_file(path, "text")
    ds = load_dataset("text")
    assert ds.dim == 20 and sum(ds.size(s) for s in ds.split_names) == 40
    assert _same_rows(np.concatenate([ds.get(s) for s in ds.split_names]), x)


def test_text_rows_with_float_values(tmp_path, rng):
    x = binary(rng, 30, 20)
    (tmp_path / "f.csv").write_text("\n".join(",".join(f"{v:.1f}" for v in row) for row in x))
    import_file(tmp_path / "f.csv", "floats")
    ds = load_dataset("floats")
    assert _same_rows(np.concatenate([ds.get(s) for s in ds.split_names]), x)


def test_text_rows_are_read_in_about_a_byte_a_value(tmp_path, rng):
    """Many short rows and one long row, mixed with comments, blank lines and two-character values:
    the reader must give the same array as the rows written, in memory near one byte a value.
    Catches the review's blow-up — a 30 MB file of 15 M one-value rows peaked at 5.4 GB (a numpy
    array per row, ~360 bytes each) and a 30 MB single line at 1.4 GB (a bytes object per value) —
    and a fast path that misreads comments, "01"-style values or mixed separators."""
    import tracemalloc

    from bihm_app.data.readers import read_text_rows

    n = 200_000
    many = tmp_path / "many.csv"
    many.write_bytes(b"# one value a row\n" + b"0\n1\n\n" * (n // 2) + b"01\n1.0\n")
    tracemalloc.start()
    got = read_text_rows(many)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.shape == (n + 2, 1) and got.dtype == np.uint8
    assert got[: n].ravel().tolist() == [0, 1] * (n // 2) and got[n:].ravel().tolist() == [1, 1]
    assert peak < 40 * n, peak  # ~22 bytes a row measured: the file read in blocks, one growing buffer (was ~300)
    wide = binary(rng, 3, 50_000)
    long_rows = tmp_path / "long.txt"
    long_rows.write_text("\n".join((", " if i % 2 else "\t").join(str(v) for v in row) for i, row in enumerate(wide)))
    assert np.array_equal(read_text_rows(long_rows), wide.astype(np.uint8))


@pytest.mark.parametrize("compress", [True, False])
def test_amat_that_is_a_matlab_file(tmp_path, rng, compress):
    x = binary(rng, 30, 20).astype(np.float64)
    write_mat(tmp_path / "bm.amat", {"X": x}, compress=compress)
    import_file(tmp_path / "bm.amat", "matx")
    ds = load_dataset("matx")
    assert _same_rows(np.concatenate([ds.get(s) for s in ds.split_names]), x.astype(np.uint8))


def test_mat_with_caltech_style_splits_and_labels(tmp_path, rng):
    sp = _splits(rng)
    arrays = {"train_data": sp["train"], "val_data": sp["valid"], "test_data": sp["test"]}
    arrays["train_labels"] = rng.integers(1, 102, (60, 1)).astype(np.float64)
    write_mat(tmp_path / "c.mat", arrays)
    import_file(tmp_path / "c.mat", "cal")
    _assert_roundtrip("cal", sp)
    assert np.array_equal(load_dataset("cal").labels("train"), arrays["train_labels"].ravel())


def test_hdf5_with_splits_and_single_dataset(tmp_path, rng):
    sp = _splits(rng)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        for s, x in sp.items():
            f.create_dataset(s, data=x)
    import_file(tmp_path / "s.h5", "h5splits")
    _assert_roundtrip("h5splits", sp)
    x = binary(rng, 50, 20)
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f.create_dataset("group/features", data=x.astype(np.float32))
    import_file(tmp_path / "one.hdf5", "h5one")
    assert _same_rows(np.concatenate([load_dataset("h5one").get(s) for s in ("train", "valid", "test")]), x)


def test_imported_set_is_listed_and_verified(tmp_path, rng):
    np.save(tmp_path / "a.npy", binary(rng, 40, 20))
    import_file(tmp_path / "a.npy", "listed")
    info = {i.name: i for i in list_datasets()}["listed"]
    assert info.present and info.verified and info.source == "imported" and info.dim == 20
    assert sum(info.splits.values()) == 40


# ---- validation: one line each, nothing written ------------------------------------------------

def _bad_npz(tmp_path, **arrays):
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p, r: _bad_npz(p, data=binary(r, 20, 5) * 2), r"non-binary value 2 at row \d+, column \d+"),
        (lambda p, r: _bad_npz(p, data=np.where(binary(r, 20, 5) > 0, np.nan, 0.0)), "contains NaN"),
        (lambda p, r: _bad_npz(p, data=np.full((20, 5), 0.5)), "non-binary value 0.5"),
        (lambda p, r: _bad_npz(p, train=binary(r, 20, 5), valid=binary(r, 5, 6), test=binary(r, 5, 5)),
         r"splits have different dimensions \(train=5, valid=6, test=5\)"),
        (lambda p, r: _bad_npz(p, train=binary(r, 20, 5), valid=np.zeros((0, 5), np.uint8), test=binary(r, 5, 5)),
         r"split 'valid': is empty"),
        (lambda p, r: _bad_npz(p, a=binary(r, 20, 5), b=binary(r, 20, 5)), "expected arrays named train/valid/test"),
        (lambda p, r: _bad_npz(p, data=np.arange(5)), "1-D"),
        (lambda p, r: (p / "r.csv").write_text("0,1,0\n1,1\n") and p / "r.csv",
         r"line 2 has 2 values but line 1 has 3 \(ragged rows\)"),
        (lambda p, r: (p / "w.csv").write_text("0,1,x\n1,1,0\n") and p / "w.csv", "not a number: 'x'"),
        (lambda p, r: (p / "d.xyz").write_text("0 1\n") and p / "d.xyz", "unknown file type '.xyz'"),
        (lambda p, r: (p / "z.npz").write_bytes(b"not a zip") and p / "z.npz", "not a readable .npz"),
        (lambda p, r: p / "missing.csv", "no such file"),
        (lambda p, r: _bad_npz(p, data=binary(r, 3, 5)), "gives an empty valid split"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, rng, make, match):
    path = make(tmp_path, rng)
    with pytest.raises(DataError, match=match) as e:
        import_file(path, "bad")
    assert "\n" not in str(e.value)
    assert leftovers(data_home()) == []


def test_name_rules(tmp_path, rng):
    np.save(tmp_path / "a.npy", binary(rng, 40, 5))
    with pytest.raises(DataError, match="taken by a built-in"):
        import_file(tmp_path / "a.npy", "bmnist")
    with pytest.raises(DataError, match="invalid data set name"):
        import_file(tmp_path / "a.npy", "../evil")
    import_file(tmp_path / "a.npy", "mine")
    with pytest.raises(DataError, match="already exists.*--force"):
        import_file(tmp_path / "a.npy", "mine")
    np.save(tmp_path / "b.npy", binary(rng, 40, 7))
    import_file(tmp_path / "b.npy", "mine", overwrite=True)
    assert load_dataset("mine").dim == 7
    assert leftovers(data_home()) == ["mine", "mine/data.npz", "mine/manifest.json"]


@pytest.mark.parametrize("vf,tf", [(1.0, 0.1), (-0.1, 0.1), (0.6, 0.5)])
def test_bad_fractions(tmp_path, rng, vf, tf):
    np.save(tmp_path / "a.npy", binary(rng, 40, 5))
    with pytest.raises(DataError, match="fraction"):
        import_file(tmp_path / "a.npy", "fr", valid_fraction=vf, test_fraction=tf)


def test_corrupted_imported_set_is_refused(tmp_path, rng):
    np.save(tmp_path / "a.npy", binary(rng, 40, 5))
    folder = import_file(tmp_path / "a.npy", "tamper")
    data = bytearray((folder / "data.npz").read_bytes())
    data[-30] ^= 0x01
    (folder / "data.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="data set 'tamper': checksum mismatch"):
        load_dataset("tamper")
