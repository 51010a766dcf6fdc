"""Every file the tool writes for the user gets the mode ``open()`` would give it: 0666 minus the
umask (0640 under umask 027), whether written atomically (mkstemp makes 0600) or not."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app

runner = CliRunner()
FRESH = ["--fresh", "--layers", "10,5", "--device", "cpu"]
#: A umask that neither mkstemp's 0600 nor a hard-coded 0644 honours.
UMASK = 0o027


def bihm(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def umask_027():
    old = os.umask(UMASK)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.lstat().st_mode) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_helpers_read_the_umask(umask_027):
    """Catches a mode computed from a fixed 022 instead of the process umask."""
    from bihm_app.file_modes import default_dir_mode, default_file_mode

    assert (default_file_mode(), default_dir_mode()) == (0o640, 0o750)


def test_pictures_gifs_reports_and_data_get_the_umask_mode(umask_027, tmp_path):
    """Catches the bug of the review: grid.png, chain.gif, the k-sweep PNG and the report's figures
    were written 0600 (mkstemp's mode, kept by the atomic write) while .npz, .h5 and report.md got
    the umask's mode; and an imported data set's files and folder were forced to 0644 / 0755
    whatever the umask."""
    out = tmp_path / "out"
    out.mkdir()
    res = bihm("sample", *FRESH, "--n", "4", "--steps", "2", "-K", "3", "--out", out / "grid.png", "--save", out / "s.npz")
    assert res.exit_code == 0, res.output
    res = bihm("inpaint", *FRESH, "--mask", "bottom", "--index", "0", "--steps", "2", "-K", "3",
               "--out", out / "inpaint.png", "--gif", out / "chain.gif", "--save", out / "i.h5")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = bihm("train", "--data", "dna", "--layers", "8,4", "--epochs", "1", "--valid-max", "100", "--z-samples", "0",
               "--quiet", "--name", "m")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = bihm("eval", "m", "--k-sweep", "-K", "1,3", "--n", "20", "--z-samples", "100")
    assert res.exit_code == 0, res.output
    res = bihm("report", "m", "--out", out / "rep", "--k-sweep", "1,3,10", "--sweep-points", "20", "--z-samples", "100")
    assert res.exit_code == 0, res.output
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", train=rng.integers(0, 2, (40, 6)), valid=rng.integers(0, 2, (10, 6)),
             test=rng.integers(0, 2, (10, 6)))  # fmt: skip
    res = bihm("data", "import", tmp_path / "d.npz", "--name", "modes")
    assert res.exit_code == 0, res.output

    home = Path(os.environ["BIHM_HOME"])
    written = {**_modes(out), **{f"BIHM_HOME/{k}": v for k, v in _modes(home).items()}}
    for must in ("grid.png", "chain.gif", "inpaint.png", "s.npz", "i.h5", "rep/report.md", "rep/m/k-sweep.png",
                 "rep/m/samples.png", "BIHM_HOME/runs/m/k-sweep-test.png", "BIHM_HOME/runs/m/best.h5"):  # fmt: skip
        assert must in written, sorted(written)
    assert any(k.startswith("BIHM_HOME/data/") and k.endswith(".npz") for k in written), sorted(written)
    wrong = {k: oct(v) for k, v in written.items() if v != 0o640}
    assert not wrong, wrong
    folders = [p for p in (home / "data").rglob("*") if p.is_dir()]
    assert folders and all(stat.S_IMODE(p.stat().st_mode) == 0o750 for p in folders), [(str(p), oct(p.stat().st_mode)) for p in folders]
