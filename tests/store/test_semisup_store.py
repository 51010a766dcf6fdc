"""Checkpoints and metrics files of semi-supervised runs, and that older files still load."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from bihm_app.engine.model import BiHM
from bihm_app.engine.semisup import LabelConfig, SemiBiHM
from bihm_app.errors import CheckpointError, RunError
from bihm_app.store import metrics
from bihm_app.store.checkpoint import load_checkpoint, save_checkpoint
from bihm_app.store.metrics import EPOCH_FIELDS, MetricsReader, MetricsWriter, read_run_metrics
from bihm_app.store.models import load_model
from tests.store.helpers import SMALL, make_arrays, make_meta


def _semi_files(tmp_path, placement):
    lc = LabelConfig(3, placement)
    model = SemiBiHM(SMALL, lc)
    arrays = {"params/" + k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    arrays["labels/train_indices"] = np.array([1, 5, 9], dtype=np.int64)
    meta = make_meta()
    meta["config"]["model"]["labels"] = lc.to_dict()
    path = tmp_path / f"{placement}.h5"
    save_checkpoint(path, arrays, meta)
    return model, arrays, meta, path


@pytest.mark.parametrize("placement", ["top", "bottom"])
def test_label_layer_round_trips_and_is_checked(tmp_path, placement):
    """A semi-supervised checkpoint stores the label parameters and indices and loads back as a
    SemiBiHM with identical parameters; label parameters of the wrong shape, missing ones, or an
    invalid label section are refused with one line."""
    model, arrays, meta, path = _semi_files(tmp_path, placement)
    ck = load_checkpoint(path)
    assert np.array_equal(ck.arrays["labels/train_indices"], [1, 5, 9])
    loaded, _, _ = load_model(path, tmp_path, labels_ok=True)
    assert isinstance(loaded, SemiBiHM) and loaded.labels == model.labels
    for (n, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert torch.equal(a, b), n
    bad = dict(arrays)
    bad["params/y_q_biases"] = np.zeros(4, np.float32)
    with pytest.raises(CheckpointError, match="y_q_biases"):
        save_checkpoint(tmp_path / "bad.h5", bad, meta)
    missing = {k: v for k, v in arrays.items() if k != "params/y_q_weights"}
    with pytest.raises(CheckpointError, match="missing"):
        save_checkpoint(tmp_path / "bad.h5", missing, meta)
    meta_bad = make_meta()
    meta_bad["config"]["model"]["labels"] = {"n_classes": 3, "placement": "sideways"}
    with pytest.raises(CheckpointError, match="placement"):
        save_checkpoint(tmp_path / "bad.h5", arrays, meta_bad)


def test_label_on_top_models_are_refused_where_labels_are_not_handled(tmp_path):
    _semi_files(tmp_path, "top")
    with pytest.raises(RunError, match="label on top"):
        load_model(tmp_path / "top.h5", tmp_path)
    _semi_files(tmp_path, "bottom")
    m, _, _ = load_model(tmp_path / "bottom.h5", tmp_path)  # its x-model is a plain BiHM
    assert isinstance(m, BiHM)


def test_unsupervised_checkpoints_still_load_as_plain_bihm(tmp_path):
    """A checkpoint without a label section (every file written before chapter 4) loads as BiHM."""
    path = tmp_path / "old.h5"
    save_checkpoint(path, make_arrays(), make_meta())
    m, meta, _ = load_model(path, tmp_path)
    assert type(m) is BiHM and "labels" not in meta["config"]["model"]


def test_metrics_files_without_the_semisup_columns_still_read(tmp_path, monkeypatch):
    """A metrics file written before the semi-supervised epoch columns existed is read with them
    as NaN; a table with an unknown column is still refused."""
    old_fields = EPOCH_FIELDS[: EPOCH_FIELDS.index("valid_error")]
    old_dtype = np.dtype([(n, metrics.EPOCH_DTYPE[n]) for n in old_fields])
    old_tables = tuple((n, old_dtype if n == "epochs" else d, c) for n, d, c in metrics._TABLES)
    path = tmp_path / "metrics-1.h5"
    monkeypatch.setattr(metrics, "_TABLES", old_tables)
    monkeypatch.setattr(metrics, "EPOCH_FIELDS", old_fields)
    monkeypatch.setattr(metrics, "EPOCH_DTYPE", old_dtype)
    with MetricsWriter(path, {"run": "old"}) as w:
        w.log_epoch({"epoch": 1, "step": 10, "valid_log_ptilde": -90.0})
    monkeypatch.undo()
    with MetricsReader(path) as r:
        row = r.read_all().epochs[0]
    assert row.dtype.names == EPOCH_FIELDS
    assert row["valid_log_ptilde"] == -90.0 and math.isnan(row["valid_error"]) and math.isnan(row["valid_log_py_se"])
    assert len(read_run_metrics(tmp_path).epochs) == 1
    # a new file with the new columns
    new = tmp_path / "new" / "metrics-1.h5"
    new.parent.mkdir()
    with MetricsWriter(new, {"run": "new"}) as w:
        w.log_epoch({"epoch": 1, "step": 10, "valid_error": 0.125, "valid_error_se": 0.01})
    with MetricsReader(new) as r:
        assert r.read_all().epochs[0]["valid_error"] == 0.125
    # a column nobody knows: refused
    odd = tmp_path / "odd.h5"
    with h5py.File(path, "r") as src, h5py.File(odd, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for name in ("updates", "events", "committed"):
            src.copy(name, dst)
        dst.create_dataset("epochs", data=np.zeros(0, dtype=[("epoch", "<i8"), ("mystery", "<f8")]), maxshape=(None,))
    with pytest.raises(CheckpointError, match="wrong columns"):
        MetricsReader(odd)
