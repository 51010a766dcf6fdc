"""`bihm sample`, `bihm inpaint`, `bihm layers` on a fresh model and on a trained run; bad input."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bihm_app.cli.app import app

runner = CliRunner()
FRESH = ["--fresh", "--layers", "10,5", "--device", "cpu"]


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("method", ["gibbs", "resample", "ancestral"])
def test_sample_writes_a_png_grid(tmp_path, method):
    out = tmp_path / "grid.png"
    res = bihm("sample", *FRESH, "--method", method, "--n", "9", "--steps", "2", "-K", "5", "--out", out)
    assert res.exit_code == 0, res.output
    img = Image.open(out)
    assert img.size == (4 * (3 * 29 + 1),) * 2  # 3×3 digits of 28 px, 1 px padding, scale 4
    assert "wrote" in res.stdout and ("▀" in res.stdout or "⣿" in res.stdout or "█" in res.stdout)


def test_inpaint_writes_png_and_gif_and_reports_scores(tmp_path):
    res = bihm("inpaint", *FRESH, "--mask", "bottom", "--indices", "0,5000", "--steps", "3", "-K", "5",
               "--out", tmp_path / "a.png", "--gif", tmp_path / "a.gif")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "pixel error" in res.stdout and "log-likelihood of the true missing pixels" in res.stdout
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames >= 2
    assert Image.open(tmp_path / "a.png").size[0] > 3 * 2 * 28


def test_inpaint_accepts_a_png_mask(tmp_path):
    mask = np.zeros((28, 28), dtype=np.uint8)
    mask[:, 20:] = 255  # white = missing
    Image.fromarray(mask).save(tmp_path / "m.png")
    res = bihm("inpaint", *FRESH, "--mask", tmp_path / "m.png", "--index", "3", "--steps", "2", "-K", "4")
    assert res.exit_code == 0, res.output
    assert "missing pixels per image: 224" in res.stdout


def test_layers_writes_a_grid(tmp_path):
    res = bihm("layers", *FRESH, "--layer", "2", "--n", "4", "--out", tmp_path / "l.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "l.png").exists()


def test_commands_work_on_a_trained_run(tmp_path):
    assert bihm("train", "--data", "dna", "--layers", "8,4", "--epochs", "1", "--valid-max", "100",
                "--z-samples", "0", "--name", "r", "--quiet").exit_code == 0  # fmt: skip
    res = bihm("sample", "r", "--n", "4", "--steps", "2", "-K", "4", "--out", tmp_path / "s.png")
    assert res.exit_code == 0, res.output
    res = bihm("inpaint", "r", "--mask", "random:0.3", "--n", "2", "--steps", "2", "-K", "4")
    assert res.exit_code == 0, res.output
    assert "missing pixels per image: 54" in res.stdout  # round(0.3 · 180)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["sample", *FRESH, "--method", "magic"], "magic"),
        (["sample"], "--fresh"),
        (["sample", "ghost-run"], "ghost-run"),
        (["layers", *FRESH, "--layer", "3"], "layer 3 does not exist"),
        (["layers", *FRESH, "--layer", "0"], "layer 0 does not exist"),
        (["inpaint", *FRESH, "--index", "10000"], "out of range"),
        (["inpaint", *FRESH, "--mask", "diagonal"], "diagonal"),
        (["inpaint", *FRESH, "--mask", "missing.png"], "missing.png"),
        (["inpaint", *FRESH, "--mask", "random:2"], "fraction"),
    ],
)
def test_bad_input_is_one_clear_line(args, needle):
    res = bihm(*args)
    assert res.exit_code == 1, res.output
    assert needle in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) <= 2


def test_wrong_size_png_mask_is_rejected(tmp_path):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(tmp_path / "small.png")
    res = bihm("inpaint", *FRESH, "--mask", tmp_path / "small.png")
    assert res.exit_code == 1 and "10x10" in res.stderr and "28x28" in res.stderr


def test_keep_current_kernel_runs_and_needs_two_proposals(tmp_path):
    res = bihm("sample", *FRESH, "--n", "4", "--steps", "2", "-K", "3", "--keep-current", "--out", tmp_path / "k.png")
    assert res.exit_code == 0, res.output
    res = bihm("inpaint", *FRESH, "--index", "1", "--steps", "2", "-K", "1", "--keep-current")
    assert res.exit_code == 1 and "at least 2" in res.stderr


LAX_MASKS = ["random:", "random: ", "random:nan", "random:inf", "random:-0.1", "random:1.5", "random:0.5x",
             "random:1_0e-1", "random:0x1", "randomly", "random_0.3:0.3", "bottom:0.3", "centre2"]  # fmt: skip


@pytest.mark.parametrize("spec", LAX_MASKS)
def test_a_lax_mask_is_refused_before_any_work(spec, monkeypatch):
    """Catches masks the parser used to take as something else: ``random:`` (and ``randomly``,
    ``random_0.3:0.3``) ran as ``random:0.5``, ``random:1_0e-1`` hid every pixel (Python's float
    reads '1_0e-1' as 1.0), ``random:nan`` failed without naming the option. Each must be one line
    naming --mask and the accepted form, exit 1, before the model or the data are loaded."""
    from bihm_app.cli import sample_cmd

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the mask was checked")

    monkeypatch.setattr(sample_cmd, "_model", no_model)
    res = bihm("inpaint", *FRESH, "--index", "1", "--steps", "2", "-K", "2", "--mask", spec)
    assert res.exit_code == 1, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--mask {spec!r}" in lines[0] and "random:F" in lines[0], res.stderr
    assert "Traceback" not in res.output


@pytest.mark.parametrize("spec, missing", [("random", 392), ("random:0.25", 196), (" Random : 0.25 ", 196),
                                           ("random:1", 784), ("random:0", 0), ("random:.5", 392),
                                           ("random:2.5e-1", 196), ("CENTRE", 196), ("center", 196)])  # fmt: skip
def test_the_mask_forms_still_accepted(spec, missing):
    """Catches the strict parser refusing a form the help names (or its case and spaces)."""
    from bihm_app.runner.pictures import missing_mask

    assert int(missing_mask(spec, 784, (28, 28)).sum()) == missing
