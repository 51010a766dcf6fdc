"""Forged checkpoints whose seal is valid but whose meta fields or array dtypes are wrong.

Each of these passed ``ckpt verify`` and crashed later (resume: RuntimeError from the generator
state, ValueError from ``islice``, TypeError from a string ``best_valid``; show/report:
AttributeError on a string ``config.train``; complex or int8 parameters cast silently). The
reader must refuse each with one line naming the file and the field, in load and verify alike.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bihm_app.errors import CheckpointError
from bihm_app.store.checkpoint import load_checkpoint, read_meta, verify_checkpoint
from tests.store.helpers import edit_meta, reseal


def refused(path, *words):
    """Load, verify and read_meta all refuse ``path`` with one line naming it and ``words``."""
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert msg.startswith(f"checkpoint {path}: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    report = verify_checkpoint(path)
    assert not report.ok and all(w in report.error for w in words), report.error
    return msg


META_FORGERIES = [
    ("train_str", lambda m: m["config"].__setitem__("train", "x"), "config.train"),
    ("train_lr_str", lambda m: m["config"]["train"].__setitem__("lr", "abc"), "config.train.lr"),
    ("train_K_neg", lambda m: m["config"]["train"].__setitem__("K", -1), "config.train.K"),
    ("meta_lr_str", lambda m: m.__setitem__("lr", "abc"), "meta lr"),
    ("best_valid_str", lambda m: m["progress"].__setitem__("best_valid", "x"), "progress.best_valid"),
    ("elapsed_str", lambda m: m["progress"].__setitem__("elapsed", "x"), "progress.elapsed"),
    ("batch_neg", lambda m: m["progress"].__setitem__("batch", -3), "progress.batch"),
    ("history_strings", lambda m: m["history"].__setitem__("valid_log_ptilde", ["a", "b", "c"]), "history.valid_log_ptilde"),
]


@pytest.mark.parametrize("name,edit,field", META_FORGERIES, ids=[f[0] for f in META_FORGERIES])
def test_meta_field_of_wrong_type_is_refused(good, name, edit, field):
    """Catches a meta field whose type or range is wrong reaching resume/show/report (tracebacks)."""

    def fn(m):
        edit(m)
        return m

    edit_meta(good, fn)
    refused(good, field)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")):
        read_meta(good)


def test_meta_nesting_bomb_is_one_line(good):
    """Catches a RecursionError (or a generic 'unreadable') from a deeply nested meta JSON."""
    import json

    with h5py.File(good, "r") as f:
        meta = json.loads(f.attrs["meta_json"])
    text = json.dumps(meta)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with h5py.File(good, "r+") as f:
        f.attrs["meta_json"] = text
    reseal(good)
    refused(good, "nested too deeply")


def _replace(path, name, value):
    with h5py.File(path, "r+") as f:
        del f[name]
        f[name] = value
    reseal(path)


@pytest.mark.parametrize("dtype", ["complex64", "int8", "float16"])
def test_parameter_of_wrong_dtype_is_refused(good, dtype):
    """Catches complex/integer/half parameters being cast silently (or with a torch warning)."""
    with h5py.File(good, "r") as f:
        a = f["params/p_prior"][()]
    _replace(good, "params/p_prior", a.astype(dtype))
    refused(good, "params/p_prior", dtype, "float32 or float64")


def test_truncated_generator_state_is_refused(good):
    """Catches a 7-byte ``rng/train`` that passed verify and crashed ``train --resume``."""
    _replace(good, "rng/train", np.zeros(7, "u1"))
    refused(good, "rng/train", "generator state")
