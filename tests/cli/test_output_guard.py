"""Output options never write over a file the tool manages (hostile review: data loss).

On the main branch before this guard ``bihm sample RUN --save RUN/checkpoint.h5`` (and --out,
--gif, --plot, data show --out, report --out) replaced the run's checkpoint, status or metrics
with a picture or a samples file and exited 0; the run could no longer be resumed. Each test here
points one option at one managed file and checks: exit code != 0, one line naming the option and
the file, no traceback, and the file's bytes unchanged. The guard runs before any model is loaded,
so fresh tiny models (dna, 5,3) keep each command well under a second.
"""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from bihm_app.cli.app import app
from bihm_app.store.seal import SEAL_MAGIC

runner = CliRunner()
FRESH = ["--fresh", "--data", "dna", "--layers", "5,3", "--seed", "7", "--threads", "1"]
MANAGED = ["checkpoint.h5", "best.h5", "status.json", "metrics-1.h5", "metrics-archive.h5", "train.log", ".lock",
           "eval-test.json", "eval-valid-latest.json"]  # fmt: skip


@pytest.fixture
def run_dir(tmp_path):
    """A run folder whose managed files hold known bytes."""
    d = tmp_path / "bihm-home" / "runs" / "base"
    d.mkdir(parents=True)
    for name in MANAGED:
        (d / name).write_bytes(b"precious " + name.encode())
    return d


def _refused(args, path):
    before = path.read_bytes()
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code not in (0, None), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and path.name in lines[0] and "refusing" in lines[0], res.output
    assert path.read_bytes() == before


COMMANDS = {
    "sample --save": lambda p: ["sample", *FRESH, "--n", "2", "--steps", "1", "--save", p],
    "sample --out": lambda p: ["sample", *FRESH, "--n", "2", "--steps", "1", "--out", p],
    "inpaint --out": lambda p: ["inpaint", *FRESH, "--n", "2", "--steps", "1", "--out", p],
    "inpaint --gif": lambda p: ["inpaint", *FRESH, "--n", "2", "--steps", "1", "--gif", p],
    "inpaint --save": lambda p: ["inpaint", *FRESH, "--n", "2", "--steps", "1", "--save", p],
    "layers --out": lambda p: ["layers", *FRESH, "--n", "2", "--out", p],
    "eval --plot": lambda p: ["eval", "base", "--k-sweep", "--plot", p],
    "classify --out": lambda p: ["classify", "base", "--out", p],
    "data show --out": lambda p: ["data", "show", "dna", "--n", "2", "--out", p],
}


CASES = [(c, n) for c in sorted(COMMANDS) for n in ("checkpoint.h5", "best.h5", "status.json", "metrics-1.h5")
         if n.endswith(".h5") or "--save" not in c]  # --save takes only .npz/.h5 names


@pytest.mark.parametrize("command,name", CASES)
def test_output_options_refuse_a_runs_own_files(run_dir, command, name):
    """Catches any output option that writes over a run's checkpoint, best, status or metrics."""
    _refused(COMMANDS[command](run_dir / name), run_dir / name)


@pytest.mark.parametrize("name", MANAGED)
def test_every_managed_run_file_is_refused(run_dir, name):
    """Catches a run file (metrics archive, log, lock, eval caches) left out of the guard."""
    _refused(["sample", *FRESH, "--n", "2", "--steps", "1", "--out", run_dir / name], run_dir / name)


def test_a_link_to_a_checkpoint_and_a_sealed_checkpoint_anywhere_are_refused(run_dir, tmp_path):
    """Catches a guard that checks only the name given (a symbolic link leads into the run) or only
    run folders (an exported checkpoint elsewhere is work too)."""
    link = tmp_path / "innocent.png"
    os.symlink(run_dir / "checkpoint.h5", link)
    _refused(["sample", *FRESH, "--n", "2", "--steps", "1", "--out", link], run_dir / "checkpoint.h5")
    exported = tmp_path / "exported.h5"
    exported.write_bytes(SEAL_MAGIC + b" 1\nsize 0\n")
    _refused(["sample", *FRESH, "--n", "2", "--steps", "1", "--save", exported], exported)


def test_a_data_set_file_is_refused(tmp_path):
    """Catches an output written over a file of the data home (an imported data set)."""
    data = tmp_path / "bihm-home" / "data" / "mine"
    data.mkdir(parents=True)
    (data / "train.npy").write_bytes(b"rows")
    _refused(["data", "show", "dna", "--n", "2", "--out", data / "train.npy"], data / "train.npy")


def test_report_refuses_a_run_folder_and_the_runs_folder(run_dir):
    """Catches `report --out` pointed at a run folder or at the runs folder (whose run folders it
    would write into)."""
    for target in (run_dir, run_dir.parent):
        res = runner.invoke(app, ["report", "base", "--out", str(target)])
        assert res.exit_code == 1 and "refusing to write there" in res.output, res.output
    assert (run_dir / "checkpoint.h5").read_bytes() == b"precious checkpoint.h5"
    assert not (run_dir / "report.md").exists() and not (run_dir.parent / "report.md").exists()


def test_an_ordinary_earlier_output_may_be_overwritten(run_dir):
    """Catches a guard so broad that a picture written by an earlier `bihm sample` cannot be replaced."""
    grid = run_dir / "grid.png"
    for _ in range(2):
        res = runner.invoke(app, ["sample", *FRESH, "--n", "2", "--steps", "1", "--out", str(grid)])
        assert res.exit_code == 0, res.output
    assert grid.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("target", ["fifo", "device"])
def test_an_output_over_a_fifo_or_a_device_is_refused(tmp_path, command, target):
    """`bihm layers --out /dev/zero` wrote its PNG over the device node (atomically: the node was
    replaced by a regular file — as root, the system's /dev/zero; review); a FIFO likewise. Catches
    any output option that writes over something that is not a regular file. The device here is a
    link to /dev/null (followed, as the write would), so the test never touches a real device."""
    suffix = ".h5" if "--save" in command else ".png"
    path = tmp_path / f"out-{target}{suffix}"
    if target == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/null")
    res = runner.invoke(app, [str(a) for a in COMMANDS[command](path)])
    assert res.exit_code not in (0, None), res.output
    assert "refusing" in res.output and ("named pipe" in res.output or "character device" in res.output), res.output
    assert path.is_fifo() if target == "fifo" else (path.is_symlink() and os.readlink(path) == "/dev/null")


def test_an_output_in_a_folder_that_is_a_file_says_so(tmp_path):
    """`--plot FILE/x.png` said "File exists" (the folder could not be made): one line naming it."""
    (tmp_path / "f").write_text("x")
    res = runner.invoke(app, ["layers", *FRESH, "--n", "2", "--out", str(tmp_path / "f" / "x.png")])
    assert res.exit_code == 1 and "is a file, not a folder" in res.output, res.output
