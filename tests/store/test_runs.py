"""Run folders: naming, status (crash detection), metrics numbering, listing, resolution."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bihm_app.errors import CheckpointError, RunError
from bihm_app.store.checkpoint import save_checkpoint
from bihm_app.store.runs import (
    RunFolder,
    list_runs,
    new_run,
    open_run,
    resolve_checkpoint,
)
from tests.store.helpers import make_arrays, make_meta


def test_default_names_and_collisions(tmp_path):
    a = new_run(tmp_path, stem="bars-2L3-0102")
    b = new_run(tmp_path, stem="bars-2L3-0102")  # the same stem: the next letter
    assert (a.name, b.name) == ("bars-2L3-0102a", "bars-2L3-0102b")
    assert a.read_status()["state"] == "created"


def test_new_run_refuses_existing_and_bad_names(tmp_path):
    new_run(tmp_path, "exp1")
    with pytest.raises(RunError, match="already exists"):
        new_run(tmp_path, "exp1")
    for bad in ["", "../x", "a/b", ".hidden", "-x", "a b", "x" * 200]:
        with pytest.raises(RunError, match="not allowed"):
            new_run(tmp_path, bad)


def test_open_run_by_name_or_path(tmp_path):
    run = new_run(tmp_path, "exp1")
    assert open_run("exp1", tmp_path).path == run.path
    assert open_run(run.path).path == run.path
    assert open_run(str(run.path), tmp_path).name == "exp1"
    with pytest.raises(RunError, match="no run named 'nope'"):
        open_run("nope", tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="not a run folder"):
        open_run("plain", tmp_path)


def test_next_metrics_path_numbering(tmp_path):
    run = new_run(tmp_path, "r")
    assert run.next_metrics_path().name == "metrics-1.h5"
    for n in (1, 3, 10):
        (run.path / f"metrics-{n}.h5").write_bytes(b"")
    (run.path / "metrics-x.h5").write_bytes(b"")
    (run.path / "metrics-2.h5.bak").write_bytes(b"")
    assert [p.name for p in run.metrics_paths()] == ["metrics-1.h5", "metrics-3.h5", "metrics-10.h5"]
    assert run.next_metrics_path().name == "metrics-11.h5"


def test_status_is_merged_and_atomic(tmp_path):
    run = new_run(tmp_path, "r")
    s1 = run.write_status("running", epoch=1, step=10, best_valid=-90.5)
    assert s1["pid"] == os.getpid() and s1["host"] == socket.gethostname()
    s2 = run.write_status("running", epoch=2, step=20, best_valid=float("nan"))
    assert s2["started"] == s1["started"] and s2["epoch"] == 2 and s2["best_valid"] is None
    assert run.read_status()["state"] == "running"  # this process is alive
    run.write_status("finished", message="early stop")
    st = run.read_status()
    assert st["state"] == "finished" and st["message"] == "early stop" and st["epoch"] == 2
    assert json.loads(run.status_path.read_text())["state"] == "finished"
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(ValueError, match="unknown run state"):
        run.write_status("exploded")


def test_running_with_a_dead_pid_reads_as_crashed(tmp_path):
    run = new_run(tmp_path, "r")
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    run.write_status("running", pid=dead, epoch=4)
    st = run.read_status()
    assert st["state"] == "crashed" and str(dead) in st["message"] and st["epoch"] == 4
    # a pid that is alive but belongs to another process than the one that wrote the status
    run.write_status("running", pid=os.getpid())
    raw = json.loads(run.status_path.read_text())
    raw["pid_start"] = (raw["pid_start"] or 0) + 12345
    run.status_path.write_text(json.dumps(raw))
    assert run.read_status()["state"] == "crashed"
    # another host: cannot tell, stays running
    run.write_status("running", pid=dead, host="elsewhere.example")
    assert run.read_status()["state"] == "running"


def test_unreadable_status_is_a_run_error(tmp_path):
    run = new_run(tmp_path, "r")
    run.status_path.write_text("{broken")
    with pytest.raises(RunError, match="status.json"):
        run.read_status()
    assert RunFolder(tmp_path / "r2").read_status() == {"state": "unknown"}


def test_sweep_temp_files(tmp_path):
    run = new_run(tmp_path, "r")
    (run.path / ".checkpoint.h5.abc123.tmp").write_bytes(b"partial")
    (run.path / ".status.json.x.tmp").write_bytes(b"partial")
    (run.path / "keep.tmp").write_bytes(b"not ours")
    removed = run.sweep_temp_files()
    assert sorted(p.name for p in removed) == [".checkpoint.h5.abc123.tmp", ".status.json.x.tmp"]
    assert (run.path / "keep.tmp").exists()


def _run_with_checkpoint(root, name, epoch=3, **train):
    run = new_run(root, name)
    save_checkpoint(run.checkpoint_path, make_arrays(), make_meta(epoch=epoch, step=epoch * 40, **train))
    return run


def test_list_runs_with_good_corrupt_and_odd_runs(tmp_path):
    root = tmp_path / "runs"
    assert list_runs(root) == []
    good = _run_with_checkpoint(root, "good", epoch=3, method="rws")
    good.write_status("finished", epoch=3)
    bad = _run_with_checkpoint(root, "bad")
    data = bad.checkpoint_path.read_bytes()
    bad.checkpoint_path.write_bytes(data[: len(data) // 2])
    broken_status = new_run(root, "broken-status")
    broken_status.status_path.write_text("[]")
    new_run(root, "fresh")
    (root / ".hidden").mkdir()
    (root / "afile.txt").write_text("x")
    runs = {r.name: r for r in list_runs(root)}
    assert sorted(runs) == ["bad", "broken-status", "fresh", "good"]
    g = runs["good"]
    assert (g.status, g.data, g.layers, g.method, g.epoch) == ("finished", "bars", [6, 3], "rws", 3)
    assert g.best_valid == pytest.approx(-17.0) and g.error is None and g.age_s is not None
    assert runs["bad"].status == "corrupt" and "truncated" in runs["bad"].error and "checkpoint.h5" in runs["bad"].error
    assert runs["broken-status"].status == "corrupt" and "status.json" in runs["broken-status"].error
    assert runs["fresh"].status == "created" and runs["fresh"].epoch is None


def test_a_run_folder_with_nothing_saved_is_empty_with_a_reason(tmp_path):
    """An empty run folder, or one holding only its lock file (a training that died before its first
    write), was listed as "unknown" with no word why. Catches such a folder not being "empty" with a
    one-line reason (naming the process when a live one holds the lock: a training starting), and
    the word spreading to folders that did save something (a status file, a log)."""
    from bihm_app.store.runlock import RunLock

    root = tmp_path / "runs"
    (root / "bare").mkdir(parents=True)
    (root / "lock-only").mkdir()
    (root / "lock-only" / ".lock").write_text("process 1 on elsewhere")
    (root / "starting").mkdir()
    (root / "log-only").mkdir()
    (root / "log-only" / "train.log").write_text("starting\n")
    (root / "empty-log").mkdir()  # a training that opened its log and died before writing a line
    (root / "empty-log" / ".lock").write_text("process 1 on elsewhere")
    (root / "empty-log" / "train.log").write_text("")
    new_run(root, "fresh")
    with RunLock(root / "starting"):
        runs = {r.name: r for r in list_runs(root)}
    assert runs["bare"].status == "empty" and runs["bare"].note == "nothing saved yet (an empty folder)"
    assert runs["lock-only"].status == "empty" and runs["lock-only"].note == "nothing saved yet (only a lock file)"
    s = runs["starting"]
    assert s.status == "empty" and f"process {os.getpid()}" in s.note and "holds its lock" in s.note, s
    assert all(runs[n].error is None and runs[n].age_s is not None for n in ("bare", "lock-only", "starting"))
    assert runs["fresh"].status == "created" and runs["fresh"].note is None
    assert runs["log-only"].status == "unknown" and runs["log-only"].note is None
    assert runs["empty-log"].status == "empty" and runs["empty-log"].note == "nothing saved yet (only a lock file)"


def test_resolve_checkpoint(tmp_path):
    root = tmp_path / "runs"
    run = _run_with_checkpoint(root, "r")
    assert resolve_checkpoint("r", root) == run.checkpoint_path  # no best.h5 yet: falls back
    save_checkpoint(run.best_path, make_arrays(), make_meta())
    assert resolve_checkpoint("r", root) == run.best_path
    assert resolve_checkpoint("r", root, which="latest") == run.checkpoint_path
    assert resolve_checkpoint(str(run.path), root) == run.best_path
    assert resolve_checkpoint(str(run.best_path), root) == run.best_path
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_checkpoint(str(tmp_path / "x.h5"), root)
    with pytest.raises(RunError, match="no run named"):
        resolve_checkpoint("other", root)
    new_run(root, "empty")
    with pytest.raises(RunError, match="no checkpoint yet"):
        resolve_checkpoint("empty", root)


def test_a_folder_in_the_working_directory_that_is_not_a_run_does_not_hide_the_run_of_that_name(tmp_path, monkeypatch):
    """`bihm report ra --out .` writes its figures into ./ra; run again from there, the same
    command (and `bihm eval ra`, `bihm sample ra`, …) said "ra is not a run folder": a bare name
    was taken as a path first. Catches that: a folder in the working directory that does not look
    like a run leaves the run of that name under the runs folder found; a folder that does look
    like a run, or an explicit path, still wins."""
    root = tmp_path / "runs"
    new_run(root, "ra")
    here = tmp_path / "here"
    (here / "ra").mkdir(parents=True)
    (here / "ra" / "training.png").write_bytes(b"png")
    monkeypatch.chdir(here)
    assert open_run("ra", root).path == root / "ra"
    with pytest.raises(RunError, match="not a run folder"):
        open_run("./ra", root)  # a path, not a name: as given
    new_run(here, "rb")
    new_run(root, "rb")
    assert open_run("rb", root).path.resolve() == (here / "rb").resolve()  # a run folder named by path


def test_a_plain_file_in_the_working_directory_does_not_hide_the_run_of_that_name(tmp_path, monkeypatch):
    """`bihm eval ra` from a folder holding a plain file ./ra (notes, a log) read ./ra as the
    checkpoint ("not an HDF5 file") although run 'ra' exists under the runs folder. Catches that: a
    bare name finds the run unless the local file is a bihm checkpoint (its seal); an explicit path
    (./ra, an absolute path, a name ending in .h5) is still taken as given, and a bare name with no
    run of that name is still the local file."""
    root = tmp_path / "runs"
    run = _run_with_checkpoint(root, "ra")
    here = tmp_path / "here"
    here.mkdir()
    (here / "ra").write_text("notes\n")
    monkeypatch.chdir(here)
    assert resolve_checkpoint("ra", root) == run.checkpoint_path
    assert resolve_checkpoint("./ra", root) == Path("./ra")
    assert resolve_checkpoint(str(here / "ra"), root) == here / "ra"
    (here / "lone").write_text("notes\n")
    assert resolve_checkpoint("lone", root) == Path("lone")  # no run 'lone': the file, as given
    save_checkpoint(here / "ra", make_arrays(), make_meta())  # a checkpoint file named like the run wins
    assert resolve_checkpoint("ra", root) == Path("ra")
    (here / "rb.h5").write_text("notes\n")
    _run_with_checkpoint(root, "rb.h5")
    assert resolve_checkpoint("rb.h5", root) == Path("rb.h5")  # ends in .h5: a file name
