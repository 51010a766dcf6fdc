"""Files written before the checkpoint simplification (schema v1, main at 27889a3) still load.

`fixtures/schema_v1.h5` is a real checkpoint of that writer (fixtures/README.md): with the seal,
fletcher32, params_sha256 and the attributes v2 no longer writes (meta_sha256, manifest,
per-dataset SHA-256). These tests catch a reader that starts to need v2's layout, one that stops
checking v1 files' seal, or a resume that cannot continue from them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.errors import CheckpointError
from bihm_app.store.checkpoint import SCHEMA_VERSION, load_checkpoint, params_digest, read_meta, verify_checkpoint
from bihm_app.store.runs import runs_root
from tests.store.helpers import chunk_offset, flip_byte, reseal

V1 = Path(__file__).parent / "fixtures" / "schema_v1.h5"


@pytest.fixture
def v1(tmp_path) -> Path:
    path = tmp_path / "v1.h5"
    shutil.copyfile(V1, path)
    return path


def test_the_fixture_is_what_main_wrote_then():
    with h5py.File(V1, "r") as f:
        assert f.attrs["schema_version"] == 1 and {"meta_sha256", "manifest_json", "manifest_sha256"} <= set(f.attrs)
        assert "sha256" in f["params/p_weights.0"].attrs and f["params/p_weights.0"].fletcher32
    assert SCHEMA_VERSION == 2


def test_a_v1_checkpoint_loads_verifies_and_reads_its_meta(v1):
    ck = load_checkpoint(v1)
    assert ck.schema_version == 1
    assert ck.attrs["params_sha256"] == params_digest(ck.params())  # its identity is kept
    assert not {"meta_sha256", "manifest_json", "manifest_sha256"} & set(ck.attrs)
    assert ck.meta["data"]["name"] == "mushrooms" and ck.meta["config"]["model"]["layers"] == [4, 2]
    assert ck.progress["epoch"] == 2 and len(ck.history["valid_log_ptilde"]) == 2
    assert set(ck.group("optim")) and ck.group("rng")["train"].dtype == np.uint8
    report = verify_checkpoint(v1)
    assert report.ok and [c.name for c in report.checks][-1] == "parameters", report.to_dict()
    assert read_meta(v1) == ck.meta


def test_a_v1_checkpoint_is_still_protected_by_its_seal_and_fletcher32(v1):
    flip_byte(v1, chunk_offset(v1, "params/p_weights.0") + 3)
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        load_checkpoint(v1)
    reseal(v1)
    with pytest.raises(CheckpointError, match="fletcher32"):
        load_checkpoint(v1)


def test_a_run_resumes_from_a_v1_checkpoint_and_writes_v2(tmp_path):
    run = runs_root() / "old"
    run.mkdir(parents=True)
    shutil.copyfile(V1, run / "checkpoint.h5")
    (run / "status.json").write_text(json.dumps({"state": "stopped"}))
    res = CliRunner().invoke(app, ["train", "--resume", "old", "--epochs", "3", "--quiet"])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(run / "checkpoint.h5")
    assert ck.schema_version == 2 and ck.progress["epoch"] == 3
    assert ck.meta["history"]["valid_log_ptilde"][:2] == load_checkpoint(V1).meta["history"]["valid_log_ptilde"]
    with h5py.File(run / "checkpoint.h5", "r") as f:
        assert not {"meta_sha256", "manifest_json"} & set(f.attrs) and f["params/p_weights.0"].fletcher32
