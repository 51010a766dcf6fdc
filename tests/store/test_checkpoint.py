"""Round trips and the writer's refusals."""

from __future__ import annotations

import math
import os
import stat

import numpy as np
import pytest
import torch

import bihm_app
from bihm_app.engine.model import BiHM, ModelConfig
from bihm_app.errors import CheckpointError, DiskFull
from bihm_app.store import checkpoint as ck
from bihm_app.store.checkpoint import (
    SCHEMA,
    SCHEMA_VERSION,
    load_checkpoint,
    params_digest,
    read_meta,
    save_checkpoint,
    verify_checkpoint,
)
from tests.store.helpers import SMALL, make_arrays, make_meta


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_round_trip_is_bit_exact_for_every_dtype(tmp_path):
    arrays = make_arrays()
    rng = np.random.default_rng(1)
    arrays.update({
        "extra/u8": rng.integers(0, 256, size=(7, 3), dtype=np.uint8),
        "extra/i64": rng.integers(-(2**62), 2**62, size=(5,), dtype=np.int64),
        "extra/i32": np.array([-1, 0, 7], dtype=np.int32),
        "extra/u16": np.array([1, 65535], dtype=np.uint16),
        "extra/f16": rng.standard_normal(9).astype(np.float16),
        "extra/f32": rng.standard_normal((2, 3, 4)).astype(np.float32),
        "extra/f64": np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, 1.0]),
        "extra/c128": np.array([1 + 2j, -3j]),
        "extra/bool": np.array([[True, False], [False, True]]),
        "extra/empty": np.zeros((0, 4), dtype=np.float32),
        "extra/scalar.f64": np.float64(math.pi),
        "extra/scalar.i64": np.int64(-42),
        "extra/scalar.u8": np.uint8(200),
        "extra/big-endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "extra/fortran": np.asfortranarray(rng.standard_normal((3, 5))),
    })  # fmt: skip
    meta = make_meta()
    path = tmp_path / "ck.h5"
    save_checkpoint(path, arrays, meta)
    ckpt = load_checkpoint(path)
    assert set(ckpt.arrays) == set(arrays)
    for name, a in arrays.items():
        a = np.asarray(a)
        b = ckpt.arrays[name]
        assert b.shape == a.shape and b.dtype == a.dtype, name
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), name
        if a.dtype.kind in "fc":  # NaN payloads, signed zeros, subnormals: the bytes themselves
            assert np.ascontiguousarray(a).tobytes() == b.tobytes(), name
    # NaN in the history survives (JSON with NaN tokens), everything else compares equal
    assert math.isnan(ckpt.meta["history"]["valid_log_p"][0])
    h = dict(ckpt.meta["history"])
    h0 = dict(meta["history"])
    h.pop("valid_log_p"), h.pop("valid_log_p_se"), h0.pop("valid_log_p"), h0.pop("valid_log_p_se")
    assert h == h0 and ckpt.meta["config"] == meta["config"] and ckpt.meta["progress"] == meta["progress"]
    assert ckpt.schema_version == SCHEMA_VERSION
    assert ckpt.attrs["schema"] == SCHEMA and ckpt.attrs["package_version"] == bihm_app.__version__
    assert ckpt.attrs["torch_version"] == torch.__version__
    assert "created" in ckpt.attrs and ckpt.attrs["file_size"] == path.stat().st_size


def test_params_restore_a_model_exactly(tmp_path):
    cfg = ModelConfig(12, (6, 3))
    model = BiHM(cfg)
    arrays = {"params/" + k: v.detach().numpy() for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path / "m.h5", arrays, make_meta(cfg))
    ckpt = load_checkpoint(tmp_path / "m.h5")
    assert ckpt.model_config() == cfg
    other = BiHM(ckpt.model_config())
    other.load_state_dict({k: torch.from_numpy(v) for k, v in ckpt.params().items()}, strict=True)
    for k, v in model.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
    assert ckpt.attrs["params_sha256"] == params_digest({k: v.numpy() for k, v in model.state_dict().items()})
    assert ckpt.n_parameters() == model.n_parameters()["total"]
    assert ckpt.group("optim") == {}


def test_read_meta_is_meta_only_and_verify_reports_all_ok(tmp_path):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(), make_meta(epoch=5, step=500))
    meta = read_meta(path)
    assert meta["progress"] == {"epoch": 5, "step": 500, "best_epoch": 5}
    report = verify_checkpoint(path)
    assert report.ok and report.error is None
    assert [c.name for c in report.checks] == ["file", "seal", "hdf5", "schema", "meta", "datasets", "parameters"]
    assert all(c.ok for c in report.checks)


def test_read_meta_of_an_unchanged_file_opens_no_hdf5_and_a_changed_file_is_read_again(tmp_path, monkeypatch):
    """The dashboard polls read_meta every 2 s per checkpoint: an unchanged file (same key and seal
    as a checked read) gives its meta without opening HDF5, as a copy the caller may change; a new
    save is read again; bytes changed in place (size and mtime kept) are caught by the seal.
    Catches a cache that serves a stale meta after a save, lets damaged bytes pass, or hands out
    its own dict."""
    import time

    from bihm_app.store.checkpoint_reader import CheckpointReader

    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(), make_meta(epoch=1, step=10))
    first = read_meta(path)
    real_open = CheckpointReader.open
    opened = []
    monkeypatch.setattr(CheckpointReader, "open", lambda self: opened.append(1) or real_open(self))
    again = read_meta(path)
    assert again == first and not opened  # no HDF5 file opened
    again["progress"]["epoch"] = 99
    assert read_meta(path)["progress"]["epoch"] == 1
    save_checkpoint(path, make_arrays(), make_meta(epoch=2, step=20))  # a new file under the name
    assert read_meta(path)["progress"]["epoch"] == 2 and len(opened) == 1
    # one byte after the seal changed in place, size and mtime restored: ctime moves, the seal catches it
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    with open(path, "r+b") as fh:
        fh.write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    while path.stat().st_ctime_ns == st.st_ctime_ns:  # a coarse clock: wait for the next tick
        time.sleep(0.005)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        read_meta(path)


def test_overwrite_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(seed=0), make_meta(step=1))
    save_checkpoint(path, make_arrays(seed=1), make_meta(step=2))
    assert load_checkpoint(path).meta["progress"]["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.h5"]


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda a, m: m["config"]["model"].update(layers=[6, 4]), "shape"),
        (lambda a, m: a.pop("params/q_biases.1"), "missing"),
        (lambda a, m: a.update({"params/extra": np.zeros(2)}), "unexpected"),
        (lambda a, m: m.pop("history"), "history"),
        (lambda a, m: m["progress"].pop("step"), "progress.step"),
        (lambda a, m: m["data"].pop("name"), "data.name"),
        (lambda a, m: m.update(bad=object()), "JSON"),
        (lambda a, m: a.update({"noslash": np.zeros(2)}), "group/name"),
        (lambda a, m: a.update({"x/../y": np.zeros(2)}), "group/name"),
        (lambda a, m: a.update({"x/s": np.array(["a", "b"])}), "numeric"),
        (lambda a, m: a.update({"x/o": np.array([None])}), "numeric"),
        (lambda a, m: a.update({"params/p_prior/sub": np.zeros(1)}), "inside"),
    ],
)
def test_save_refuses_inconsistent_input_and_keeps_the_old_file(tmp_path, mutate, words):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(), make_meta(step=1))
    before = path.read_bytes()
    arrays, meta = make_arrays(seed=2), make_meta(step=2)
    mutate(arrays, meta)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint(path, arrays, meta)
    msg = str(info.value)
    assert words in msg and str(path) in msg and "\n" not in msg
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.h5"]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_failure_during_the_write_removes_the_temp_file(tmp_path, monkeypatch, exc):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(), make_meta(step=1))
    before = path.read_bytes()

    def boom(_fd):
        raise exc

    monkeypatch.setattr(os, "fsync", boom)  # the atomic writer (store/atomic.py) fsyncs the temp file
    expected = KeyboardInterrupt if isinstance(exc, KeyboardInterrupt) else DiskFull if exc.errno == 28 else CheckpointError
    with pytest.raises(expected) as info:
        save_checkpoint(path, make_arrays(seed=3), make_meta(step=2))
    monkeypatch.undo()
    if expected is DiskFull:
        assert str(info.value) == f"no space left on device while writing {path}"
    elif expected is CheckpointError:
        assert "Input/output error" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.h5"]


def test_save_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        save_checkpoint(tmp_path / "nope" / "ck.h5", make_arrays(), make_meta())


def test_the_seal_is_readable_text_and_covers_the_file(tmp_path):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, make_arrays(), make_meta())
    head = path.read_bytes()[:512]
    assert head.startswith(b"bihm-checkpoint-seal 1\nsize ")
    assert f"size {path.stat().st_size}\n".encode() in head
    assert path.read_bytes()[512:520] == b"\x89HDF\r\n\x1a\n"


def test_tensors_are_accepted_and_stored_as_arrays(tmp_path):
    arrays = make_arrays(SMALL)
    arrays["optim/t"] = torch.arange(3, dtype=torch.int64)
    save_checkpoint(tmp_path / "t.h5", arrays, make_meta())
    got = load_checkpoint(tmp_path / "t.h5").arrays["optim/t"]
    assert got.dtype == np.int64 and got.tolist() == [0, 1, 2]


def test_new_files_get_the_usual_permissions(tmp_path):
    from bihm_app.store.runs import new_run

    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "ck.h5", make_arrays(), make_meta())
        run = new_run(tmp_path / "runs", "r")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ck.h5").stat().st_mode) == 0o644
    assert stat.S_IMODE(run.status_path.stat().st_mode) == 0o644
