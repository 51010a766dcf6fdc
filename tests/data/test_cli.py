"""`bihm data …` through the real Typer app."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.data.builtin import BUILTINS

from .conftest import binary
from .test_fetch import Server


@pytest.fixture
def runner():
    return CliRunner()


def test_list_shows_every_builtin_verified(runner):
    res = runner.invoke(app, ["data", "list"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for name in BUILTINS:
        row = next(line for line in lines if f" {name} " in line)
        assert "verified" in row
    assert "ocr_letters" in res.stdout and "absent" in res.stdout


def test_list_json(runner):
    res = runner.invoke(app, ["data", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["bmnist"]["verified"] and rows["bmnist"]["dim"] == 784
    assert rows["mnist-dyn"]["dynamic"] and not rows["caltech101"]["present"]


@pytest.mark.parametrize("name,shape", [("bmnist", None), ("nips", None)])
def test_show_writes_png_and_prints_a_terminal_image(runner, tmp_path, name, shape):
    png = tmp_path / "grid.png"
    res = runner.invoke(app, ["data", "show", name, "--n", "16", "--out", str(png), "--scale", "2"])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        w, h = im.size
    if name == "bmnist":  # 4x4 grid of 28x28 with 1-pixel padding, scale 2
        assert (w, h) == (2 * (4 * 29 + 1), 2 * (4 * 29 + 1))
    assert any(ch in res.stdout for ch in "▀▄█") or any(0x2800 <= ord(c) <= 0x28FF for c in res.stdout)
    if name == "bmnist":
        assert "labels:" in res.stdout


def test_bad_name_is_exit_1_with_one_line(runner):
    res = runner.invoke(app, ["data", "show", "no-such-set"])
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "unknown data set 'no-such-set'" in lines[0]


def test_import_then_list_and_bad_import(runner, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", binary(rng, 100, 16))
    res = runner.invoke(app, ["data", "import", str(tmp_path / "x.npy"), "--name", "mine", "--valid-fraction", "0.2"])
    assert res.exit_code == 0, res.output
    assert "imported mine" in res.stdout and "valid 20" in res.stdout
    res = runner.invoke(app, ["data", "list", "--json"])
    assert {r["name"]: r for r in json.loads(res.stdout)}["mine"]["source"] == "imported"
    (tmp_path / "bad.csv").write_text("0,1\n1\n")
    res = runner.invoke(app, ["data", "import", str(tmp_path / "bad.csv"), "--name", "bad"])
    assert res.exit_code == 1 and "ragged rows" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["data", "remove", "mine"])
    assert res.exit_code == 0


def test_fetch_by_url(runner):
    server = Server()
    try:
        body = b"0 1 1\n1 0 0\n" * 20
        server.files["/d.txt"] = body
        args = ["data", "fetch", "web2", "--url", server.url("/d.txt"), "--sha256", hashlib.sha256(body).hexdigest()]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "fetched web2" in res.stdout
        res = runner.invoke(app, ["data", "fetch", "web3", "--url", server.url("/d.txt"), "--sha256", "0" * 64])
        assert res.exit_code == 1 and "checksum mismatch" in res.stderr
    finally:
        server.close()
