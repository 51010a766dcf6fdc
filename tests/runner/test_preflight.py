"""The checks before a run starts or resumes, shared by `bihm train` and the dashboard (issue #15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bihm_app.errors import BihmError, ConfigError, RunError
from bihm_app.runner import preflight
from bihm_app.runner.preflight import check_new_run, check_resume, data_problem, name_problem, usable_checkpoint
from bihm_app.store.runs import RunFolder
from tests.tui.runs_fixture import make_run, set_status

BAD_NAMES = {
    "../evil name": "path separator",
    "a/b": "path separator",
    "a..b": "'..'",
    "evil name": "space",
    "tab\there": "control character",
    "bell\x07": "control character",
    ".hidden": "starts with '.'",
    "-x": "starts with '-'",
    "x" * 129: "129 characters",
    "é": "'é'",
}


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_bad_run_names_are_refused_with_the_reason(name, tmp_path):
    """Catches a name check that accepts a name leading out of the runs folder (or one the launch
    log path would turn into a file outside `.launch/`), or refuses without saying why."""
    problem = name_problem(name)
    assert problem is not None and BAD_NAMES[name] in problem and "not allowed" in problem
    with pytest.raises(ConfigError, match="not allowed"):
        check_new_run(tmp_path, name, "dna")
    assert not any(tmp_path.iterdir())  # nothing written


def test_good_names_and_present_data_pass(tmp_path):
    for name in ("run-1", "bmnist-paper12-0526a", "a.b+c_d"):
        assert name_problem(name) is None
    check_new_run(tmp_path, "run-1", "dna")
    check_new_run(tmp_path, None, "bmnist")  # the default name comes later


def test_listed_but_absent_data_set_needs_a_fetch(tmp_path):
    """Catches launching a run on a fetchable set that is not downloaded (the child then exits 1)."""
    problem = data_problem("ocr_letters")
    assert problem is not None and "bihm data fetch ocr_letters" in problem
    with pytest.raises(ConfigError, match="bihm data fetch ocr_letters"):
        check_new_run(tmp_path, "x", "ocr_letters")
    assert "unknown data set" in data_problem("no-such-set")


def test_existing_run_name_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="already exists"):
        check_new_run(tmp_path, "taken", "dna")


def test_bihm_train_uses_the_same_check(monkeypatch):
    """Catches the CLI and the dashboard drifting apart: `bihm train` must call runner.preflight."""
    from bihm_app.cli.app import app

    seen = []
    real = preflight.check_new_run

    def spy(root, name, data):
        seen.append((name, data))
        return real(root, name, data)

    monkeypatch.setattr(preflight, "check_new_run", spy)
    res = CliRunner().invoke(app, ["train", "--data", "dna", "--layers", "4", "--name", "../evil name", "--quiet"])
    assert res.exit_code == 1 and "path separator" in res.output and "Traceback" not in res.output
    assert seen == [("../evil name", "dna")]
    runs = Path(os.environ["BIHM_HOME"]) / "runs"
    assert not runs.exists() or not any(runs.iterdir())


# -- which checkpoint an action reads, and whether a run can be resumed -----------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_checkpoint_falls_back_to_best_with_a_warning(tmp_path):
    """Catches an action that reads a damaged checkpoint.h5 (or refuses although best.h5 is fine),
    and a fallback that happens silently."""
    run = make_run(tmp_path, "r", epochs=2)
    _truncate(run.checkpoint_path)
    best = usable_checkpoint(run, "best")  # pictures prefer best.h5 anyway, but the damage is reported
    assert best.path == run.best_path and "checkpoint.h5 is damaged" in best.warning and "using best.h5" in best.warning
    latest = usable_checkpoint(run, "latest")
    assert latest.path == run.best_path and "checkpoint.h5 is damaged" in latest.warning and "using best.h5" in latest.warning
    assert usable_checkpoint(make_run(tmp_path, "fine", epochs=1), "latest").warning is None
    _truncate(run.best_path)
    none = usable_checkpoint(run, "best")
    assert none.path is None and "best.h5 is damaged" in none.problem and "checkpoint.h5 is damaged" in none.problem


def test_resume_is_refused_for_finished_running_and_unreadable_runs(tmp_path):
    """Catches a resume that starts a process only for it to exit 1 (finished run, nothing to
    resume from) or a second trainer on a live run; each refusal must say why."""
    fin = make_run(tmp_path, "fin", epochs=2)
    from bihm_app.store.checkpoint import read_meta, save_checkpoint
    from bihm_app.store.checkpoint import load_checkpoint

    ck = load_checkpoint(fin.checkpoint_path)
    meta = read_meta(fin.checkpoint_path)
    meta["progress"].update(finished=True, stop_reason="epoch limit")
    save_checkpoint(fin.checkpoint_path, dict(ck.arrays), meta)
    with pytest.raises(RunError, match="already finished.*--epochs"):
        check_resume(tmp_path, "fin")

    make_run(tmp_path, "stopped", epochs=2, state="stopped")
    assert check_resume(tmp_path, "stopped").name == "stopped"  # a stopped run resumes

    live = make_run(tmp_path, "live", epochs=2, state="stopped")
    set_status(live, "running")  # this process: alive
    with pytest.raises(RunError, match="still running"):
        check_resume(tmp_path, "live")

    empty = RunFolder(tmp_path / "empty")
    empty.path.mkdir()
    set_status(empty, "crashed")
    with pytest.raises(RunError, match="no checkpoint"):
        check_resume(tmp_path, "empty")

    broken = make_run(tmp_path, "broken", epochs=2, state="stopped")
    _truncate(broken.checkpoint_path)
    _truncate(broken.best_path)
    with pytest.raises(BihmError, match="damaged"):
        check_resume(tmp_path, "broken")
