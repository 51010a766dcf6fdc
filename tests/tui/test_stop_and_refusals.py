"""Stopping a run that is still starting, how a stopped child is reported, and the wording of the
classify refusal (review rough edges). Each test fails on the dashboard before its fix."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from textual.widgets import Button

from bihm_app.store.runs import RunFolder, new_run
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.runs import RunsScreen
from tests.tui.runs_fixture import set_status
from tests.tui.test_screens import runs_loaded, select_row, wait_for

SIZE = (100, 32)

#: A trainer that has made its run folder ("created") and holds the run lock while it "loads"; a
#: SIGINT ends it with 130, as KeyboardInterrupt ends `bihm train` before training starts.
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bihm_app.store.runs import new_run
    run = new_run(Path(sys.argv[1]), sys.argv[2])
    lock = run.lock()
    print("holding", flush=True)
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        sys.exit(130)
""")

#: A process that prints and then waits for SIGINT (exit 130) without ever making a run folder:
#: a launch still importing torch or loading the data.
LOADING = "import signal,sys,time\nsignal.signal(signal.SIGINT, lambda *a: sys.exit(130))\nprint('ready', flush=True)\ntime.sleep(60)"


def _start(argv: list[str]) -> subprocess.Popen:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, start_new_session=True)
    assert child.stdout.readline().strip() in (b"holding", b"ready")
    return child


async def test_stop_of_a_created_run_sends_sigint_to_the_lock_holder(runs_root):
    """A run whose process is alive but still loading data or building the model is "created";
    `x` said "run held is not running (state: created)", so a run launched with wrong settings
    could not be stopped until its first update. Catches that: `x` on the runs list and the run
    view's Stop button reach the live lock holder (it exits 130)."""
    child = _start([sys.executable, "-c", HOLDER, str(runs_root), "held"])
    try:
        assert RunFolder(runs_root / "held").read_status()["state"] == "created"
        app = make_app(runs_root)
        async with app.run_test(size=SIZE) as pilot:
            screen = await runs_loaded(pilot)
            select_row(screen, "held")
            app.open_run("held")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
            assert not app.screen.query_one("#stop", Button).disabled  # a created run can be stopped
            await pilot.press("x")
            assert child.wait(timeout=10) == 130
            await pilot.pause()
            said = [n.message for n in app._notifications]
            assert any("asked run held to stop" in m for m in said) and not any("not running" in m for m in said), said
    finally:
        if child.poll() is None:
            child.kill()


async def test_stop_reaches_the_process_the_dashboard_launched_before_its_folder_exists(runs_root):
    """Right after the new-run form starts a training, its process imports torch and loads the
    data before any run folder exists: `x` on its run view said "no run named …". Catches that:
    the process the dashboard launched is signalled (SIGINT, exit 130), its view says it stopped
    (not "exited with code …" as for a failure), and once it has exited a second `x` signals nothing."""
    child = _start([sys.executable, "-c", LOADING])
    app = make_app(runs_root)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await runs_loaded(pilot)
            app.children_procs["young"] = child
            app.push_screen(RunScreen("young", starting=True))
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
            await pilot.press("x")
            assert child.wait(timeout=10) == 130
            await wait_for(pilot, lambda: "young" not in app.children_procs)
            info = lambda: " ".join(str(app.screen.query_one("#run-info").render()).split())  # noqa: E731
            await wait_for(pilot, lambda: "young: stopped (exit code 130) before the run started" in info())
            said = [n.message for n in app._notifications]
            assert any(f"SIGINT to pid {child.pid}" in m for m in said) and not any("no run named" in m for m in said), said
            app.children_procs["young"] = child  # exited (its pid may be another process's by now) …
            app.stop_run("young")
            await pilot.pause()
            said = [n.message for n in app._notifications]
            assert sum("asked run young to stop" in m for m in said) == 1, said  # … is not signalled again
            assert any("no run named 'young'" in m for m in said), said
    finally:
        if child.poll() is None:
            child.kill()


async def test_a_child_ended_by_sigterm_is_reported_as_stopped_not_as_an_error(runs_root):
    """`bihm train` saves and exits 143 on SIGTERM (a shutdown, `kill`), as it exits 130 on
    Ctrl-C; the dashboard reported 143 as "exited with code 143" with severity error and showed
    the exit on the run view. Catches that: 143 is reported like 130, a stop with a checkpoint."""

    class Child:
        def __init__(self, rc: int) -> None:
            self.pid, self.returncode = 4242, rc

        def poll(self) -> int:
            return self.returncode

    set_status(RunFolder(runs_root / "beta"), "stopped", epoch=6, step=150)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        for rc in (130, 143):
            app.children_procs["beta"] = Child(rc)
            app.reap_children()
        await pilot.pause()
        notes = [n for n in app._notifications if "beta" in n.message]
        assert [n.severity for n in notes] == ["information"], [(n.message, n.severity) for n in notes]
        assert "stopped" in notes[0].message and "beta" not in app.child_exits


async def test_a_child_stopped_before_its_first_save_does_not_claim_a_checkpoint(runs_root):
    """A training stopped while it was still starting exits 130 with nothing saved: the toast
    said "stopped (checkpoint saved)". Catches that: it says the run stopped before its first save."""

    class Child:
        pid, returncode = 4242, 130

        def poll(self) -> int:
            return 130

    new_run(runs_root, "young").write_status("stopped", message="SIGINT before its first checkpoint")
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.children_procs["young"] = Child()
        app.reap_children()
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("young stopped before its first save" in m for m in said) and not any("saved)" in m for m in said), said


async def test_classify_of_a_run_without_a_checkpoint_is_refused_with_words_for_classifying(runs_root):
    """`y` on a run with no checkpoint: the runs list said "refused … nothing to draw until its
    first save" (words for pictures) and the run view showed an "error" with the path. Catches
    both: each view refuses with the title "refused" and "nothing to classify with until its first
    save", and no classify view opens."""
    new_run(runs_root, "fresh").write_status("stopped", epoch=0)
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "fresh")
        await pilot.press("y")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunsScreen)
        app.open_run("fresh")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 0 and app.screen.run)
        await pilot.press("y")
        await pilot.pause(0.5)
        assert isinstance(app.screen, RunScreen)
        notes = [(n.title, n.message) for n in app._notifications]
        expected = ("refused", "run fresh has no checkpoint yet: nothing to classify with until its first save")
        assert notes == [expected, expected] or notes == [expected], notes  # the same toast twice shows once
        assert app.screen.query_one("#run-info")  # still the run view


def test_stopping_a_launched_run_that_trains_says_it_saves(runs_root):
    """The dashboard's own child, once training ("running" in status.json), was told "it is still
    starting: nothing is saved" — the wording of a launch still loading — because the live child
    was assumed to be starting. Catches that: the line follows the run's state."""
    from bihm_app.tui import launcher

    child = _start([sys.executable, "-c", LOADING])
    try:
        run = new_run(runs_root, "busy")
        set_status(run, "running", pid=child.pid)
        line = launcher.stop(runs_root, "busy", child)
        assert "it saves a checkpoint first" in line and "still starting" not in line, line
        assert child.wait(timeout=10) == 130
    finally:
        if child.poll() is None:
            child.kill()
    child = _start([sys.executable, "-c", LOADING])  # no folder yet: still starting
    try:
        assert "it is still starting" in launcher.stop(runs_root, "nofolder", child)
        assert child.wait(timeout=10) == 130
    finally:
        if child.poll() is None:
            child.kill()


def test_a_child_killed_by_a_signal_is_said_so_by_name_not_as_a_negative_exit_code(runs_root):
    """A launched child killed by a signal (`kill -9`, the OOM killer; SIGINT before Python set up
    its handler) has a negative return code: the toast read "exited with code -9: (nothing in …)"
    and the run view "stopped (exit code -2)". Catches those: the signal is named, no negative code."""
    from types import SimpleNamespace

    from bihm_app.tui.launcher import exit_report, start_note
    from bihm_app.tui.run_info import info_text

    new_run(runs_root, "killed").write_status("running")
    said, failed = exit_report(runs_root, "killed", -signal.SIGKILL)
    assert failed and "killed by SIGKILL" in said and "code -" not in said, said
    note = start_note(runs_root, "never", (-signal.SIGINT, ""))
    assert "SIGINT" in note and "code -" not in note, note
    series = SimpleNamespace(best_valid=lambda: None, warnings=[], best_error=lambda: None, last_epoch_value=lambda k: None)
    progress = SimpleNamespace(text=lambda: "")
    info = info_text("killed", {"state": "crashed"}, series, progress, "raw", None, (-signal.SIGKILL, "(nothing in the log)"))
    assert "killed by SIGKILL" in info and "code -" not in info, info


def test_stopping_a_training_run_that_exits_at_once_still_says_it_saves(runs_root, monkeypatch):
    """The stop line read the run's state after the SIGINT: a trainer that exited before that read
    (a loaded machine, a fast save) had left "running" behind, and a training run was said to be
    "still starting: nothing is saved" (flaky on 2 busy cores). Catches that: the state is read
    before the signal, for the dashboard's own child and for a run it did not launch."""
    from bihm_app.tui import launcher

    signalled: list[subprocess.Popen] = []
    real_child, real_run = launcher.stop_child, launcher.stop_run

    def child_exits_at_once(name, proc):
        pid = real_child(name, proc)
        proc.wait(timeout=10)
        return pid

    def run_exits_at_once(run):
        pid = real_run(run)
        signalled[-1].wait(timeout=10)
        return pid

    monkeypatch.setattr(launcher, "stop_child", child_exits_at_once)
    monkeypatch.setattr(launcher, "stop_run", run_exits_at_once)
    for name, own in (("mine", True), ("theirs", False)):
        child = _start([sys.executable, "-c", LOADING])
        signalled.append(child)
        try:
            set_status(new_run(runs_root, name), "running", pid=child.pid)
            line = launcher.stop(runs_root, name, child if own else None)
            assert "it saves a checkpoint first" in line and "still starting" not in line, (name, line)
            assert child.returncode == 130
        finally:
            if child.poll() is None:
                child.kill()
