"""Untrusted files: every kind of damage is a CheckpointError with one line naming the file."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from bihm_app.errors import CheckpointError
from bihm_app.store.checkpoint import load_checkpoint, read_meta, verify_checkpoint
from tests.store.helpers import (
    chunk_offset,
    edit_attrs,
    edit_meta,
    flip_byte,
    make_arrays,
    reseal,
)


def rejected(path, *words, verify=True):
    """Assert that loading fails with one line naming the file and containing ``words``; return it."""
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, verify=verify)
    msg = str(info.value)
    assert msg.startswith(f"checkpoint {path}: "), msg
    assert "\n" not in msg and "Traceback" not in msg
    for w in words:
        assert w in msg, msg
    report = verify_checkpoint(path)
    assert not report.ok and report.error
    return msg


def test_missing_file_and_folder(tmp_path):
    rejected(tmp_path / "nope.h5", "no such file")
    rejected(tmp_path, "folder")


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello, I am text\n" * 100)
    rejected(p, "not an HDF5 file")
    p.write_bytes(b"")
    rejected(p, "empty file")


@pytest.mark.parametrize("keep", [0.999, 0.7, 0.3, 0.01])
def test_truncated(good, keep):
    data = good.read_bytes()
    good.write_bytes(data[: int(len(data) * keep)])
    rejected(good, "truncated")
    with pytest.raises(CheckpointError, match="truncated"):
        read_meta(good)


def test_truncated_inside_the_seal(good):
    good.write_bytes(good.read_bytes()[:300])
    rejected(good)


def test_appended_bytes(good):
    with open(good, "ab") as fh:
        fh.write(b"\0" * 10)
    rejected(good, "longer than when it was written")


def test_bit_flip_inside_a_dataset_is_caught_by_the_seal(good):
    flip_byte(good, chunk_offset(good, "params/p_weights.0") + 5)
    rejected(good, "SHA-256 mismatch")


def test_bit_flip_inside_a_dataset_is_caught_by_fletcher32_even_when_resealed(good):
    flip_byte(good, chunk_offset(good, "params/p_weights.0") + 5)
    reseal(good)
    rejected(good, "params/p_weights.0", "fletcher32")
    rejected(good, "params/p_weights.0", verify=False)  # HDF5's own check still runs


def test_rewritten_parameters_are_caught_by_params_sha256(good):
    with h5py.File(good, "r+") as f:  # fletcher32 is recomputed by HDF5; only params_sha256 knows
        f["params/q_weights.1"][0, 0] += 1.0
    reseal(good)
    rejected(good, "params SHA-256 mismatch")
    # without verification the (consistent-looking) file loads, but with the changed value
    assert load_checkpoint(good, verify=False).arrays["params/q_weights.1"][0, 0] != make_arrays()[
        "params/q_weights.1"][0, 0]  # fmt: skip


def test_an_edited_and_resealed_file_is_trusted_as_written(good):
    """Schema v2 dropped the per-dataset SHA-256 (docs/checkpoint-format.md): whoever reseals a file
    on purpose could recompute those too. Such an edit of optimizer state loads as edited."""
    with h5py.File(good, "r+") as f:
        f["optim/state.3.exp_avg"][0] += 1.0
    reseal(good)
    assert load_checkpoint(good).arrays["optim/state.3.exp_avg"][0] == make_arrays()["optim/state.3.exp_avg"][0] + 1
    assert verify_checkpoint(good).ok


def test_edited_attribute_without_reseal_breaks_the_seal(good):
    edit_attrs(good, seal=False, created="yesterday")
    rejected(good, "longer than when it was written")
    reseal(good)
    load_checkpoint(good)
    data = bytearray(good.read_bytes())  # same size, other bytes: edit the attribute in place
    at = data.index(b"yesterday", 512)
    data[at : at + 9] = b"YESTERDAY"
    good.write_bytes(bytes(data))
    rejected(good, "SHA-256 mismatch")


def test_damaged_seal(good):
    with open(good, "r+b") as fh:
        fh.write(b"XXXX")
    rejected(good, "seal")


def test_foreign_hdf5_without_schema(tmp_path):
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["params/p_prior"] = np.zeros(3)
    rejected(p, "foreign HDF5", "no 'schema'")


def test_foreign_hdf5_with_another_schema(tmp_path, good):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.attrs["schema"] = "keras-model"
    rejected(p, "foreign HDF5", "keras-model")
    edit_attrs(good, schema="something-else")  # a sealed file with a foreign schema
    rejected(good, "foreign HDF5", "something-else")


@pytest.mark.parametrize("version, words", [(3, "newer"), (0, "not supported"), ("1", "not an integer")])
def test_wrong_schema_version(good, version, words):
    edit_attrs(good, schema_version=version)
    rejected(good, words)


def test_missing_group_params(good):
    with h5py.File(good, "r+") as f:
        del f["params"]
    reseal(good)
    rejected(good, "missing group 'params'")


def test_a_resealed_file_without_optimizer_state_loads_its_parameters(good):
    """The parameters are whole and checked; a resume starts a fresh Adam (Trainer.load_state)."""
    with h5py.File(good, "r+") as f:
        del f["optim"]
    reseal(good)
    ck = load_checkpoint(good)
    assert ck.group("optim") == {} and set(ck.params()) == {k[7:] for k in make_arrays() if k.startswith("params/")}


def test_added_parameter_is_refused_by_the_shape_check(good):
    with h5py.File(good, "r+") as f:
        f["params/smuggled"] = np.zeros(3, dtype=np.float32)
    reseal(good)
    rejected(good, "unexpected parameters", "smuggled")


def test_missing_meta(good):
    edit_attrs(good, meta_json=None)
    rejected(good, "meta_json")


def test_invalid_meta_json(good):
    edit_attrs(good, meta_json="{not json")
    rejected(good, "invalid meta JSON")


@pytest.mark.parametrize("section", ["config", "data", "progress", "history"])
def test_meta_without_a_section(good, section):
    edit_meta(good, lambda m: {k: v for k, v in m.items() if k != section})
    rejected(good, section)


def test_meta_edited_without_resealing_is_caught_by_the_seal(good):
    with h5py.File(good, "r") as f:
        meta = json.loads(f.attrs["meta_json"])
    meta["progress"]["epoch"] = 99
    edit_attrs(good, seal=False, meta_json=json.dumps(meta))
    rejected(good, "longer than when it was written")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda m: m["config"]["model"].update(layers=[6, 4]), "shape"),
        (lambda m: m["config"]["model"].update(layers=[6, 3, 2]), "missing"),
        (lambda m: m["config"]["model"].update(layers=[6]), "unexpected"),
        (lambda m: m["config"]["model"].update(n_visible=13), "shape"),
        (lambda m: m["config"]["model"].update(n_visible="12"), "n_visible"),
    ],
)
def test_parameter_shapes_not_matching_the_config(good, change, words):
    def fn(m):
        change(m)
        return m

    edit_meta(good, fn)
    rejected(good, words)


def test_params_digest_mismatch(good):
    edit_attrs(good, params_sha256="0" * 64)
    rejected(good, "params SHA-256")


def test_string_dataset_is_refused(good):
    with h5py.File(good, "r+") as f:
        f["optim/note"] = "hello"
    reseal(good)
    rejected(good, "optim/note", "not numeric")


def test_unsealed_copy_of_a_checkpoint_is_named_as_such(good, tmp_path):
    with open(good, "r+b") as fh:
        fh.write(b"\0" * 512)
    rejected(good, "seal")


def test_verify_lists_failures_and_skips_what_cannot_be_checked(good, tmp_path):
    flip_byte(good, chunk_offset(good, "optim/state.3.exp_avg") + 1)
    reseal(good)
    report = verify_checkpoint(good)
    by = {c.name: c for c in report.checks}
    assert by["seal"].ok and by["schema"].ok and by["meta"].ok
    assert by["datasets"].ok is False and "optim/state.3.exp_avg" in by["datasets"].detail
    assert by["parameters"].ok is None
    p = tmp_path / "nothing.h5"
    report = verify_checkpoint(p)
    assert [c.ok for c in report.checks] == [False] + [None] * 6
