"""`bihm sample|inpaint|layers --save FILE.npz|FILE.h5` (issue #15): the samples, their means, every
layer's final state and the settings, for use outside bihm.

A fresh model on `dna` (180 pixels) keeps each command well under a second; the saved arrays are
compared with what the runner draws for the same settings and with the model itself (the means
are σ(p(x | h_1)) of the saved h_1, so a state saved from another chain or sweep is caught).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.runner.models import fresh_model
from bihm_app.runner.pictures import SAMPLING, sample_pictures
from bihm_app.runner.sample_files import load_samples

runner = CliRunner()
FRESH = ["--fresh", "--data", "dna", "--layers", "5,3", "--seed", "7", "--threads", "1"]


def _model():
    return fresh_model("5,3", "dna", "cpu", 7).model


def _means_of(h1: np.ndarray) -> np.ndarray:
    m = _model()
    with torch.no_grad():
        return torch.sigmoid(m.p_logits(1, torch.as_tensor(h1, dtype=torch.float32))).numpy()


def _run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.parametrize("method", ["gibbs", "resample", "ancestral"])
def test_sample_save_round_trips_in_both_formats(tmp_path, method):
    """Both files hold the same arrays, equal to the runner's draws for these settings."""
    from dataclasses import replace

    opts = ["--method", method, "--n", "6", "--steps", "3", "-K", "4", "--inner-k", "2"]
    got = {}
    for suffix in (".npz", ".h5"):
        path = tmp_path / f"s{suffix}"
        res = _run("sample", *FRESH, *opts, "--save", path)
        assert f"wrote {path}" in res.stdout
        got[suffix] = load_samples(path)
    (a, settings), (b, settings_h5) = got[".npz"], got[".h5"]
    assert a.keys() == b.keys() == {"samples", "means", "h1", "h2"}
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    cfg = replace(SAMPLING, method=method, steps=3, K=4, inner_K=2, seed=7)
    pics = sample_pictures(_model(), 6, cfg)
    assert np.array_equal(a["samples"], pics.x.astype(np.uint8)) and np.array_equal(a["means"], pics.means)
    assert a["samples"].shape == (6, 180) and set(np.unique(a["samples"])) <= {0, 1}
    assert a["h1"].shape == (6, 5) and a["h2"].shape == (6, 3)
    np.testing.assert_allclose(a["means"], _means_of(a["h1"]), rtol=1e-6, atol=1e-7)
    assert settings == settings_h5 | {"created": settings["created"]}
    assert settings["command"] == "sample" and settings["method"] == method and settings["seed"] == 7
    assert settings["data"] == "dna" and settings["layers"] == [5, 3] and settings["n"] == 6
    assert ("sweeps" in settings) == (method == "gibbs") and ("K" in settings) == (method != "ancestral")


def test_inpaint_save_keeps_the_known_pixels_and_the_inputs(tmp_path):
    path = tmp_path / "inpaint.h5"
    _run("inpaint", *FRESH, "--index", "3,10", "--mask", "top", "--steps", "2", "-K", "3", "--inner-k", "2", "--save", path)
    a, settings = load_samples(path)
    from bihm_app.runner.models import dataset

    x_test = dataset("dna").get("test")[[3, 10]]
    assert np.array_equal(a["original"], x_test.astype(np.uint8)) and list(a["indices"]) == [3, 10]
    known = ~a["missing"]
    assert a["missing"].any() and known.any()
    assert np.array_equal(a["samples"][:, known], a["original"][:, known])  # clamped, as the chain must
    assert settings["command"] == "inpaint" and settings["mask"] == "top" and settings["sweeps"] == 2
    assert settings["indices"] == [3, 10] and a["h1"].shape == (2, 5) and a["h2"].shape == (2, 3)


def test_layers_save_holds_the_fixed_top_state(tmp_path):
    path = tmp_path / "layers.npz"
    _run("layers", *FRESH, "--layer", "2", "--n", "5", "--save", path)
    a, settings = load_samples(path)
    assert (a["h2"] == a["h2"][0]).all()  # the one top-down state of layer 2, below it 5 completions
    np.testing.assert_allclose(a["means"], _means_of(a["h1"]), rtol=1e-6, atol=1e-7)
    assert settings["command"] == "layers" and settings["layer"] == 2 and settings["n"] == 5


@pytest.mark.parametrize("name", ["out.png", "out", "out.npy", "out.hdf5"])
def test_other_suffixes_are_one_line_and_exit_1_before_any_work(tmp_path, name):
    for cmd in ("sample", "inpaint", "layers"):
        res = runner.invoke(app, [cmd, *FRESH, "--save", str(tmp_path / name)])
        assert res.exit_code == 1 and "Traceback" not in res.output
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --save") and name in lines[0], res.stderr
        assert ".npz or .h5" in lines[0] and not res.stdout.strip()  # nothing drawn first
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    """The write is atomic: a write error mid-way leaves neither a partial file nor a temp file."""
    import os

    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(5, "I/O error")))
    res = runner.invoke(app, ["sample", *FRESH, "--method", "ancestral", "--n", "2", "--save", str(tmp_path / "s.npz")])
    monkeypatch.setattr(os, "write", real)
    assert res.exit_code == 1 and "cannot write" in res.stderr and "s.npz" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_load_samples_reads_a_hostile_file_like_a_data_file(tmp_path):
    """`load_samples` (exported for scripts) opened any file with h5py/numpy as it was: a FIFO named
    samples.h5 or an external link to one blocked for ever, a small gzip-chunked dataset declaring
    200,000 × 10,000 values allocated 2 GB, a missing settings_json was a KeyError and deeply nested
    settings a RecursionError (hostile review, session 6). Each must be one DataError line naming
    the file, at once; a file bihm wrote still loads (the control)."""
    import json
    import os

    import h5py

    from bihm_app.errors import DataError

    good = tmp_path / "good.h5"
    _run("sample", *FRESH, "--method", "ancestral", "--n", "2", "--save", good)
    assert load_samples(good)[1]["method"] == "ancestral"
    os.mkfifo(tmp_path / "fifo.h5")
    with h5py.File(tmp_path / "link.h5", "w") as f:
        f["samples"] = h5py.ExternalLink(str(tmp_path / "fifo.h5"), "/x")
        f.attrs["settings_json"] = "{}"
    with h5py.File(tmp_path / "big.h5", "w") as f:
        f.create_dataset("samples", shape=(200_000, 10_000), dtype="u1", chunks=(1000, 1000), compression="gzip")
        f.attrs["settings_json"] = "{}"
    with h5py.File(tmp_path / "nosettings.h5", "w") as f:
        f["samples"] = np.zeros((2, 3), "u1")
    with h5py.File(tmp_path / "nested.h5", "w") as f:
        f["samples"] = np.zeros((2, 3), "u1")
        f.attrs["settings_json"] = "[" * 50_000 + "]" * 50_000
    np.savez(tmp_path / "nosettings.npz", samples=np.zeros((2, 3), "u1"))
    for name, words in [("fifo.h5", "named pipe"), ("link.h5", "external link"), ("big.h5", "allowed"),
                        ("nosettings.h5", "no settings_json"), ("nested.h5", "damaged settings_json"),
                        ("nosettings.npz", "no settings_json")]:  # fmt: skip
        with pytest.raises(DataError) as err:
            load_samples(tmp_path / name)
        line = str(err.value)
        assert name in line and "\n" not in line and any(w in line for w in words.split("|")), line
    assert json.loads(json.dumps(load_samples(good)[1]))  # settings stay plain JSON
