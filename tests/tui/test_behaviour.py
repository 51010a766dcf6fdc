"""How the dashboard behaves for a new user (issue #15): the new-run form, honest launches, live
progress, corrupt runs, stale states, help and palette. Each test fails on the dashboard before
the fix for the reason in its docstring."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest
from rich.cells import cell_len
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Select, Static

from bihm_app.runner.pictures import INPAINTING
from bihm_app.store.checkpoint import load_checkpoint, read_meta, save_checkpoint
from bihm_app.store.metrics import MetricsWriter
from bihm_app.store.runs import RunFolder
from bihm_app.tui import launcher
from bihm_app.tui.app import make_app
from bihm_app.tui.screens.confirm import ConfirmScreen
from bihm_app.tui.screens.help import HelpScreen
from bihm_app.tui.screens.inpaint import InpaintScreen
from bihm_app.tui.screens.new_run import NewRunScreen
from bihm_app.tui.screens.run import RunScreen
from bihm_app.tui.screens.runs import RunsScreen
from bihm_app.tui.screens.samples import SamplesScreen
from tests.tui.runs_fixture import set_status
from tests.tui.test_screens import runs_loaded, select_row, wait_for

SIZE = (100, 32)


def no_spawn(monkeypatch) -> list:
    """Record (and refuse) every process start."""
    calls: list = []

    def spawn(argv, log):
        calls.append(argv)
        raise AssertionError(f"must not start a process: {argv}")

    monkeypatch.setattr(launcher, "spawn", spawn)
    return calls


def messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def open_form(pilot) -> NewRunScreen:
    app = pilot.app
    await runs_loaded(pilot)
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen) and app.screen.is_mounted)
    await pilot.pause()
    return app.screen


def field_message(form: NewRunScreen, field: str) -> str:
    return str(form.query_one(f"#m-{field}", Static).render())


async def type_into(pilot, form: NewRunScreen, field: str, text: str) -> Input:
    """Clear a field and type ``text`` key by key, as a person would."""
    widget = form.query_one(f"#f-{field}", Input)
    widget.focus()
    widget.value = ""
    await pilot.pause()
    for ch in text:
        await pilot.press({" ": "space", ".": "full_stop", "/": "slash", "-": "minus"}.get(ch, ch))
    await pilot.pause()
    return widget


# -- 1. the new-run form: focus, q, leaving a changed form --------------------------------------------
async def test_form_opens_with_the_first_field_focused_and_q_types_instead_of_quitting(runs_root):
    """Catches `n` then `q` quitting the whole app (nothing had focus, so q reached the app's quit
    binding), and q quitting from a form whose focus is on a list rather than a text field."""
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        assert app.focused is form.query_one("#f-name", Input)
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and app.screen is form and form.query_one("#f-name", Input).value == "q"
        form.query_one("#f-data", Select).focus()
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and app.screen is form
        assert "q" not in [b.key for b in app.active_bindings.values() if b.binding.action == "quit_key" and b.enabled]


async def test_leaving_or_quitting_a_changed_form_asks_first(runs_root):
    """Catches a form whose typed settings vanish on escape or ctrl+q without a question, and a
    question asked although nothing was changed."""
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        await pilot.press("escape")  # unchanged: leaves at once
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        form = await open_form(pilot)
        await pilot.press("x")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # keep editing
        await wait_for(pilot, lambda: app.screen is form)
        assert form.query_one("#f-name", Input).value == "x"
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is form)
        assert app.is_running
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


# -- 2. validation before launching, with the CLI's rules ---------------------------------------------
async def test_form_refuses_a_bad_name_with_the_reason_and_writes_nothing(runs_root, monkeypatch):
    """Catches `../evil name` being launched (its log was written to the runs folder, outside
    `.launch/`) and a refusal that does not say why."""
    calls = no_spawn(monkeypatch)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        await type_into(pilot, form, "name", "../evil name")
        assert form.query_one("#f-name", Input).value == "../evil name"
        assert "path separator" in field_message(form, "name")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen) and not calls
        assert any("not allowed" in m and "path separator" in m for m in messages(app))
    assert not (runs_root / ".launch").exists()
    assert sorted(p.name for p in runs_root.parent.iterdir()) == ["runs"]  # nothing beside the runs folder
    with pytest.raises(Exception, match="not allowed"):
        launcher.launch_log_path(runs_root, "../evil name")


async def test_form_marks_data_sets_that_need_a_fetch_and_refuses_them(runs_root, monkeypatch):
    """Catches launching on a listed but absent set (`ocr_letters`: the child exits 1) and a data
    list that does not say which sets must be fetched first."""
    calls = no_spawn(monkeypatch)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        select = form.query_one("#f-data", Select)
        labels = {value: str(label) for label, value in select._options}
        assert "needs `bihm data fetch ocr_letters`" in labels["ocr_letters"]
        assert "fetch" not in labels["dna"]
        select.value = "ocr_letters"
        await pilot.pause()
        assert "bihm data fetch ocr_letters" in field_message(form, "data")
        form.query_one("#f-name", Input).value = "fine"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen) and not calls
        assert any("bihm data fetch ocr_letters" in m for m in messages(app))


# -- 4. typed values are never changed silently ---------------------------------------------------
async def test_typed_numbers_stay_as_typed_with_the_reason_they_are_refused(runs_root, monkeypatch):
    """Catches `2.5` typed into K becoming `25` (the dot was dropped) and `abc` typed into lr being
    swallowed, without a word."""
    calls = no_spawn(monkeypatch)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        k = await type_into(pilot, form, "K", "2.5")
        assert k.value == "2.5" and "'2.5' is not a whole number" in field_message(form, "K")
        lr = await type_into(pilot, form, "lr", "abc")
        assert lr.value == "abc" and "'abc' is not a number" in field_message(form, "lr")
        await type_into(pilot, form, "batch", "0")
        assert "at least 1" in field_message(form, "batch")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not calls and isinstance(app.screen, NewRunScreen)
        assert any("K (samples): '2.5' is not a whole number (and 2 more)" in m for m in messages(app))
        assert app.focused is k  # the first refused field
        await type_into(pilot, form, "K", "3")
        assert field_message(form, "K") == "importance samples per point"  # the hint is back


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_form_labels_are_whole_at_80_and_120_columns(runs_root, size):
    """Catches labels and hints cut off at the widths people use (the form's two columns of
    fields left 7 cells per label and clipped placeholders)."""
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=size) as pilot:
        form = await open_form(pilot)
        for label in form.query(Label):
            text = str(label.render())
            assert label.region.width >= cell_len(text), text
            assert label.region.right <= size[0]
        for msg in form.query(".nr-msg"):  # hints wrap instead of being cut
            text = str(msg.render())
            assert msg.region.width * msg.region.height >= cell_len(text), text
        for inp in form.query(Input):  # a placeholder is read whole, or there is none
            assert inp.content_region.width >= cell_len(inp.placeholder), inp.placeholder
        for box in form.query(Checkbox):
            assert box.region.width >= cell_len(str(box.label)) + 4, str(box.label)
            assert box.region.right <= size[0]


# -- 3. a launched or resumed process that exits says why at once ----------------------------------
async def test_a_launch_that_exits_shows_its_last_log_line_at_once(runs_root, monkeypatch):
    """Catches "waiting for the run to start …" shown for 60 s after the child already exited
    with an error (the reason was only in a log file)."""
    failing = [sys.executable, "-c", "import sys; print('loading …'); print('error: the specific reason'); sys.exit(1)"]
    monkeypatch.setattr(launcher.NewRunSpec, "argv", lambda self, root, name: failing)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        form.query_one("#f-name", Input).value = "doomed"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        screen = app.screen
        # the log's last line can show while the child is still exiting: wait for the exit itself
        await wait_for(pilot, lambda: "exited with code 1" in str(screen.query_one("#run-info").render()), timeout=8)
        info = str(screen.query_one("#run-info").render())
        assert "the specific reason" in info
        assert "exited with code 1" in info and "waiting" not in info
        # the toast is posted from the watcher right after the info line: wait for it, don't race it
        await wait_for(pilot, lambda: any("exited with code 1: error: the specific reason" in m for m in messages(app)), timeout=8)


async def test_a_resume_that_exits_shows_its_last_log_line_on_the_run_view(runs_root, monkeypatch):
    """Catches a failed resume whose reason is only in `.launch/NAME.log`."""
    monkeypatch.setattr(launcher, "resume_argv", lambda root, name: [
        sys.executable, "-c", "import sys; print('error: resume went wrong', file=sys.stderr); sys.exit(1)"])
    set_status(RunFolder(runs_root / "beta"), "stopped", epoch=6, step=150)
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_run("beta")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        screen = app.screen
        await pilot.press("r")
        # the log's last line can show while the child is still exiting; the toast comes with the exit
        await wait_for(pilot, lambda: any("resume went wrong" in m for m in messages(app)), timeout=8)
        await wait_for(pilot, lambda: "resume went wrong" in str(screen.query_one("#run-info").render()), timeout=8)


# -- 5. progress from the metrics, the same on both views --------------------------------------------
def live_run(root, name="live", phase="estimating 2 log Z"):
    """A running run (this process holds it) with 2 of 10 epochs done, 40 updates per epoch at
    8 updates per second of training time, and the trainer in ``phase``. status.json is stale."""
    run = RunFolder(root / name)
    run.path.mkdir()
    set_status(run, "running", epoch=0, step=0)
    cfg = {"data": "bmnist", "model": {"n_visible": 784, "layers": [8, 4]}, "train": {"K": 3, "epochs": 10}}
    w = MetricsWriter(run.path / "metrics-1.h5", {"run": name, "config": cfg, "start_step": 0, "start_epoch": 0,
                                                  "batches_per_epoch": 40})  # fmt: skip
    step = 0
    for e in range(2):
        w.log_event(step, step / 8, "phase", "training")
        for _ in range(40):
            step += 1
            w.log_update(step, e, step / 8.0, -150.0)
        w.log_event(step, step / 8, "phase", "validating")
        w.log_epoch({"epoch": e + 1, "step": step, "time": step / 8.0 + 1.0 * (e + 1), "valid_log_ptilde": -140.0 - e,
                     "valid_log_ptilde_se": 1.0})  # fmt: skip
    w.log_event(step, step / 8, "phase", "training")
    for _ in range(10):
        step += 1
        w.log_update(step, 2, 2.0 + step / 8.0, -150.0)
    w.log_event(step, 2.0 + step / 8, "phase", "validating")
    if phase == "estimating 2 log Z":
        w.log_event(step, 2.0 + step / 8, "phase", phase)
    w.flush()
    return run, w


async def test_runs_list_and_run_view_show_the_same_live_progress(runs_root):
    """Catches the runs list showing status.json's stale `epoch 0, step 0` while the run view
    tails the metrics, no epoch total/speed/ETA, and `0 upd/s` (instead of the phase) while the
    trainer validates or estimates 2 log Z."""
    run, writer = live_run(runs_root)
    app = make_app(runs_root, cursor_blink=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await runs_loaded(pilot)
            table = screen.query_one("#runs-table", DataTable)
            assert str(table.get_cell("live", "epoch")) == "2/10"
            assert str(table.get_cell("live", "progress")) == "estimating 2 log Z"
            row = next(r for r in screen.rows if r.summary.name == "live")
            assert row.summary.step == 90  # not status.json's 0
            app.open_run("live")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.progress is not None)
            view = app.screen
            assert view.progress == row.progress  # one computation for both views
            info = str(view.query_one("#run-info").render())
            # the list counts epochs done (2/10); the view names the epoch in progress, as the CLI does
            assert "epoch 3/10" in info and "estimating 2 log Z" in info and "0 upd/s" not in info
            assert row.progress.updates_per_s == pytest.approx(8.0)
            # 2 done + 10/40 of the third of 10 epochs; 6 s per epoch (5 s training + 1 s validation)
            assert row.progress.eta_s == pytest.approx((10 - 2 - 10 / 40) * 6.0)
            assert "8 upd/s" in info and "ETA 46s" in info
            for step in range(91, 101):  # training again: the view follows the rows as they arrive
                writer.log_update(step, 2, 2.0 + step / 8.0, -150.0)
            writer.log_event(100, 14.5, "phase", "training")
            await wait_for(pilot, lambda: view.progress.phase == "training" and view.progress.step == 100)
            assert "batch 20/40" in str(view.query_one("#run-info").render())
    finally:
        writer.close()


# -- 6. corrupt runs: check before acting, fall back with a warning, say why ----------------------
def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


async def _status_and_detail(pilot, screen, name: str) -> tuple[str, str]:
    """The runs table's status cell of run ``name`` and the detail line once its row is selected."""
    status = str(screen.query_one("#runs-table", DataTable).get_cell(name, "status"))
    select_row(screen, name)
    await pilot.pause()
    return status, str(screen.query_one("#runs-detail").render())


async def test_damaged_checkpoint_falls_back_to_best_on_both_views_with_a_warning(runs_root):
    """Catches the runs list refusing samples of a run whose best.h5 is fine while the run view
    allows them without a word: both must allow them, from best.h5, and warn."""
    truncate(runs_root / "alpha" / "checkpoint.h5")
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        status, detail = await _status_and_detail(pilot, screen, "alpha")
        assert status == "damaged" and "checkpoint.h5 is damaged" in detail
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SamplesScreen) and app.screen.generated >= 1)
        samples = app.screen
        assert samples.model.path.name == "best.h5" and "checkpoint.h5 is damaged" in samples.warning
        assert "warning" in str(samples.query_one("#picture-status").render())
        assert any("using best.h5" in m for m in messages(app))
        await pilot.press("escape")
        app.open_run("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        info = str(app.screen.query_one("#run-info").render())
        assert "warning" in info and "checkpoint.h5 is damaged" in info and "best.h5" in info


def mark_finished(run_dir) -> None:
    for path in (run_dir / "checkpoint.h5", run_dir / "best.h5"):
        ck = load_checkpoint(path)
        meta = read_meta(path)
        meta["progress"].update(finished=True, stop_reason="epoch limit")
        save_checkpoint(path, dict(ck.arrays), meta)


async def test_resume_of_a_finished_or_unreadable_run_is_refused_with_the_reason(runs_root, monkeypatch):
    """Catches `r` starting a process that exits 1 (finished run; run with no readable
    checkpoint), the reason only in a log."""
    calls = no_spawn(monkeypatch)
    mark_finished(runs_root / "alpha")
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        select_row(screen, "alpha")
        await pilot.press("r")
        await pilot.pause()
        assert any("already finished" in m and "--epochs" in m for m in messages(app))
        select_row(screen, "gamma")
        await pilot.press("r")
        await pilot.pause()
        assert any("gamma cannot be resumed" in m and "damaged" in m for m in messages(app))
        app.open_run("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        await pilot.pause(0.6)
        resume = app.screen.query_one("#resume", Button)
        assert resume.disabled and "already finished" in str(resume.tooltip)
    assert not calls


# -- 7. stale states ----------------------------------------------------------------------------------
async def test_bad_inpaint_index_says_so_instead_of_starting_forever(runs_root, monkeypatch):
    """Catches "starting 4 chains …" left on screen after the chain failed (index out of range),
    and a typed index silently altered (2.5 -> 25)."""
    monkeypatch.setattr("bihm_app.tui.screens.inpaint.CONFIG", replace(INPAINTING, steps=2))
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        app.open_inpaint("alpha")
        await wait_for(pilot, lambda: isinstance(app.screen, InpaintScreen) and app.screen.model is not None)
        await app.workers.wait_for_complete()
        s = app.screen
        box = s.query_one("#inpaint-index", Input)
        box.value = "1000000"
        box.focus()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(s.query_one("#picture-status").render())
        assert "starting" not in status and "does not exist" in status
        box.value = ""
        for key in ("2", "full_stop", "5"):
            await pilot.press(key)
        assert box.value == "2.5"
        await pilot.press("enter")
        await pilot.pause()
        assert "not a whole number" in str(s.query_one("#picture-status").render())


async def test_repeated_keys_without_a_run_give_one_toast_and_the_empty_state_is_centred(tmp_path):
    """Catches six presses stacking six identical "No run selected" toasts, and the empty state
    being a muted line at the bottom instead of the centre with the two ways to start a run."""
    app = make_app(tmp_path / "nothing-here")
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        for _ in range(6):
            await pilot.press("s")
            await pilot.pause()
        assert sum("No run selected" in m for m in messages(app)) == 1
        empty = screen.query_one("#runs-empty", Static)
        text = str(empty.render())
        assert empty.display and "bihm train" in text and "press n" in text
        middle = SIZE[1] // 2
        assert empty.region.y < middle < empty.region.bottom and empty.region.width >= SIZE[0] - 2
        assert (empty.styles.content_align_horizontal, empty.styles.content_align_vertical) == ("center", "middle")
        assert not screen.query_one("#runs-table", DataTable).display


async def test_a_worker_result_arriving_while_the_app_shuts_down_is_dropped(runs_root, monkeypatch):
    """Shutdown stops the app, then removes each screen's widgets before the screen itself: a
    runs-list refresh finishing in between reached a RunsScreen still on the stack but without its
    table (NoMatches, re-raised as WorkerFailed when the test or the app exits; seen in CI). The
    late result must be dropped. Replays that order: the app stopped, the table removed, then the
    worker's result delivered from a thread."""
    import asyncio

    from textual.app import App

    delivered = []
    real_close_all = App._close_all

    async def close_all(self):
        screen = next(s for s in self.screen_stack if isinstance(s, RunsScreen))
        await screen.query_one("#runs-table").remove()

        def late_result():  # a worker thread's call, as BihmScreen.in_thread makes it
            screen.call_ui(lambda rows: delivered.append(rows) or screen._show_rows(rows), [])

        await asyncio.to_thread(late_result)  # raised NoMatches here before the fix
        await real_close_all(self)

    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        monkeypatch.setattr(App, "_close_all", close_all)
    assert delivered == []


async def test_a_row_highlight_queued_before_shutdown_is_ignored(runs_root, monkeypatch):
    """The same shutdown order for the table's own message: showing the rows queues a
    RowHighlighted, and on a loaded machine it was handled after shutdown had removed the table
    (NoMatches '#runs-table' from the detail line; the test above failed so under load). Replays
    it: the app stopped, the table removed, then the highlight handled."""
    import asyncio

    from textual.app import App
    from textual.widgets import DataTable

    real_close_all = App._close_all
    handled = []

    async def close_all(self):
        screen = next(s for s in self.screen_stack if isinstance(s, RunsScreen))
        table = screen.query_one("#runs-table", DataTable)
        key = table.coordinate_to_cell_key((0, 0)).row_key
        await table.remove()
        screen.post_message(DataTable.RowHighlighted(table, 0, key))
        await asyncio.sleep(0.2)
        handled.append(True)
        await real_close_all(self)

    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        monkeypatch.setattr(App, "_close_all", close_all)
    assert handled == [True]


async def test_a_child_exit_reaped_while_the_app_shuts_down_leaves_the_run_view_alone(runs_root, monkeypatch):
    """The same shutdown order for the process watcher: a training child that exits while the app
    shuts down was reported to a RunScreen whose buttons were already gone (NoMatches '#stop' from
    `_update_side`, failing the live-training test in CI). Replays it: the app stopped, the run
    view's buttons removed, then the watcher reaps the exited child — it must still collect it."""
    from textual.app import App

    class ExitedChild:
        pid, returncode = 4242, 130

        def poll(self):
            return 130

    set_status(RunFolder(runs_root / "beta"), "stopped", epoch=6, step=150)
    real_close_all = App._close_all

    async def close_all(self):
        screen = next(s for s in self.screen_stack if isinstance(s, RunScreen))
        await screen.query_one("#run-buttons").remove()
        self.children_procs["beta"] = ExitedChild()
        self.reap_children()  # raised NoMatches here before the fix
        assert "beta" not in self.children_procs
        await real_close_all(self)

    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await runs_loaded(pilot)
        app.open_run("beta")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.redraws >= 1)
        monkeypatch.setattr(App, "_close_all", close_all)
    assert app.children_procs == {}


# -- 8. help and palette -----------------------------------------------------------------------------
async def test_help_and_palette_use_human_names_without_duplicates(runs_root):
    """Catches the help heading "RunsScreen" and palette entries such as "Compare (screen)" or
    "New run" next to "New run (screen)"."""
    app = make_app(runs_root)
    async with app.run_test(size=SIZE) as pilot:
        screen = await runs_loaded(pilot)
        titles = [c.title for c in app.get_system_commands(screen)]
        assert len(titles) == len(set(titles)), titles
        assert titles.count("New run") == 1 and not any("(screen)" in t or "RunsScreen" in t for t in titles)
        assert "Compare" in titles and "Samples" in titles
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        assert "runs list" in text and "RunsScreen" not in text


async def test_a_run_folder_with_nothing_saved_is_empty_in_the_table_with_its_reason(runs_root):
    """Catches a run folder holding only its lock file shown as "unknown" in the runs table with an
    empty detail line: the table says "empty" and the detail says nothing was saved yet."""
    (runs_root / "stillborn").mkdir()
    (runs_root / "stillborn" / ".lock").write_text("")
    app = make_app(runs_root, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        status, detail = await _status_and_detail(pilot, await runs_loaded(pilot), "stillborn")
    assert status == "empty", status
    assert "stillborn" in detail and "nothing saved yet (only a lock file)" in detail, detail
