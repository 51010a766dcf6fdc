"""The live view of one run: curves from its metrics files, hyper-parameters, log tail, stop/resume.

A :class:`RunSeries` tails the run's SWMR metrics files; a timer at ``REDRAW_HZ`` polls it and
redraws the charts only when rows arrived (or the view changed). Works for runs started here
and for runs started from the command line alike.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Header, Static

from bihm_app.errors import BihmError
from bihm_app.runner.preflight import ActionChecks
from bihm_app.runner.progress import RunProgress, run_progress
from bihm_app.runner.summaries import SavedCounts, hyper_parameters, tail_lines
from bihm_app.store.runs import RunFolder, open_run
from bihm_app.tui.launcher import launch_log_path, start_note
from bihm_app.tui.run_info import info_text
from bihm_app.tui.screens.base import BihmScreen, one_line
from bihm_app.tui.widgets.metric_chart import MetricChart
from bihm_app.tui.widgets.run_metrics import BOUND_COLUMNS, ERROR_COLUMNS, LOGZ_COLUMNS, RunSeries
from bihm_app.tui.widgets.key_footer import KeyFooter
from bihm_app.tui.format import escape

REDRAW_HZ = 2.0
ZOOMS = (None, 50, 10, 3)  # "last N epochs" steps of the zoom key; None = everything
#: Views of the epoch chart: (columns, title). The error view exists for semi-supervised runs only.
EPOCH_VIEWS = {
    "bounds": (BOUND_COLUMNS, "validation log p~*, log p (per epoch) ± 2 se"),
    "error": (ERROR_COLUMNS, "validation error % (per epoch) ± 2 se"),
    "logz": (LOGZ_COLUMNS, "2 log Z (per epoch) ± 2 se"),
}
#: What the empty charts say, for a run that ended (False) or may still write rows (True).
EMPTY = {True: ("waiting for updates", "waiting for the first epoch"), False: ("no updates recorded", "no epoch recorded")}
LOG_LINES = 12
START_WAIT_S = 60.0  # how long a just-launched run may take to create its folder


class RunScreen(BihmScreen):
    """Live curves and controls of one run."""

    #: Most important first: the footer shows the first ones that fit (the rest under "? more").
    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs list"),
        Binding("x", "stop", "Stop", tooltip="Stop the run (SIGINT: it saves a checkpoint and exits)"),
        Binding("r", "resume", "Resume", tooltip="Resume the run from its last checkpoint"),
        Binding("s", "samples", "Samples", tooltip="Samples of this run's best model"),
        Binding("v", "epoch_view", "log p / 2 log Z", tooltip="Switch the epoch chart between the bounds (log p~*, log p), the validation error (semi-supervised runs) and 2 log Z"),
        Binding("z", "zoom", "Zoom", tooltip="Zoom to the last N epochs (cycles 50, 10, 3, all)"),
        Binding("m", "smooth", "Smooth", tooltip="Toggle the smoothed batch-bound curve"),
        Binding("y", "classify", "Classify", tooltip="Classify digits with this semi-supervised run"),
    ]

    def __init__(self, name: str, starting: bool = False) -> None:
        super().__init__()
        self.run_name = name
        self.starting = starting  # launched just now: wait for its folder instead of failing
        self._reported, self._mounted_at = False, 0.0
        self.run: RunFolder | None = None
        self.series: RunSeries | None = None
        self.smooth, self.zoom_index = False, 0
        self.epoch_view = "bounds"
        self._error_seen = False
        self.redraws = 0
        self._drawn_version = -1
        self._status: dict = {}
        self._params: list[tuple[str, str]] = []
        self._shown: dict[str, str] = {}
        self.exit: tuple[int, str] | None = None  # how the process launched from here ended (code, last log line)
        self.checks = ActionChecks()  # what samples read, whether resume may start (as on the runs list)
        self.progress: RunProgress | None = None
        self.saved = SavedCounts()  # the saved epoch count, when the metrics files have no readable row

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("", id="run-info")
        with Horizontal(id="run-body"):
            with Vertical(id="run-charts"):
                yield MetricChart("batch bound (per update)", "step", empty=EMPTY[True][0], id="chart-batch")
                yield MetricChart(EPOCH_VIEWS["bounds"][1], "epoch", empty=EMPTY[True][1], id="chart-epochs")
            with VerticalScroll(id="run-side"):
                with Horizontal(id="run-buttons"):  # first: above the fold at 80×24
                    yield Button("Stop", id="stop", variant="error")
                    yield Button("Resume", id="resume", variant="primary")
                yield Static("", id="run-params")
                yield Static("", id="run-log")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = f"run {self.run_name}"
        self._mounted_at = time.monotonic()
        self.exit = self.app.child_exits.get(self.run_name)  # type: ignore[attr-defined]
        self._open_folder()
        self.set_interval(1.0 / REDRAW_HZ, self.tick)

    def child_exited(self, rc: int) -> None:
        """Called by the app when the process it launched for this run ended."""
        self.exit = self.app.child_exits.get(self.run_name)  # type: ignore[attr-defined]
        self.checks.forget()  # status and checkpoints may have changed: check again
        if self.run is None:
            self._open_folder()
        else:
            self.tick()

    def _open_folder(self) -> bool:
        """Open the run folder; a run just launched may need a moment to create it — unless its
        process has already ended, whose last log line is then shown at once."""
        try:
            self.run = open_run(self.run_name, self.root)
        except BihmError as exc:
            if self.exit is not None or (self.starting and time.monotonic() - self._mounted_at < START_WAIT_S):
                self._reported = self.exit is not None  # an exit is final; a start is still awaited
                self.query_one("#run-info", Static).update(escape(start_note(self.root, self.run_name, self.exit)))
                return False
            if not self._reported:
                self._reported = True
                self.fail(exc)
                self.query_one("#run-info", Static).update(f"[b]{self.run_name}[/b]: {escape(one_line(exc))}")
            return False
        self.series = RunSeries(self.run.path)
        self.tick()
        return True

    def on_unmount(self) -> None:
        if self.series is not None:
            self.series.close()

    # -- the timer -----------------------------------------------------------------------------
    def tick(self) -> None:
        """Poll the metrics tail and status; redraw the charts only if something changed."""
        if self.run is None or self.series is None:
            if not self._reported:
                self._open_folder()
            return
        try:
            self.series.poll()
        except Exception as exc:  # noqa: BLE001 - keep ticking; show the problem once per change
            self.fail(exc)
        try:
            self._status = self.run.read_status()
        except BihmError as exc:
            self._status = {"state": "corrupt", "message": str(exc)}
        if self.series.version != self._drawn_version:
            self.redraw()
        self.checks.update(self.run, str(self._status.get("state", "unknown")))
        self._update_side()

    def redraw(self) -> None:
        series = self.series
        if series is None:
            return
        last, live = ZOOMS[self.zoom_index], self._status.get("state", "unknown") in ("running", "created", "unknown")
        self.query_one("#chart-batch", MetricChart).show([series.batch_curve(self.smooth, last)], empty=EMPTY[live][0])
        if not self._error_seen and series.has_error():  # a semi-supervised run: show its error first
            self._error_seen, self.epoch_view = True, "error"
        columns, title = EPOCH_VIEWS[self.epoch_view]
        self.query_one("#chart-epochs", MetricChart).show(series.epoch_curves(last, columns), title=title, empty=EMPTY[live][1])
        self._drawn_version = series.version
        self.redraws += 1

    def _update_side(self) -> None:
        series, run = self.series, self.run
        if series is None or run is None:
            return
        state = str(self._status.get("state", "unknown"))
        self.progress = self.saved.progress(run, run_progress(series.updates, series.epochs, series.events, series.run_info, state))
        zoom = ZOOMS[self.zoom_index]
        view = ("smoothed" if self.smooth else "raw") + (f", last {zoom} epochs" if zoom else "")
        info = info_text(self.run_name, self._status, series, self.progress, view, self.checks.model, self.exit,
                         self.query_one("#run-info").content_region.width or self.app.size.width - 2, self.saved.summary)
        self._set("#run-info", info)
        if not self._params:
            self._params = hyper_parameters(run, series.run_info)
        params = self._params
        text = "[b]hyper-parameters[/b]\n" + "\n".join(f"{k:>10} {v}" for k, v in params) if params else "[b]hyper-parameters[/b]\n—"
        self._set("#run-params", text)
        log = run.log_path if run.log_path.exists() else launch_log_path(self.root, self.run_name)
        lines = tail_lines(log, LOG_LINES)
        source = escape(log.name)
        if not lines:  # started from the command line: its output went to that terminal
            lines, source = series.log_lines(LOG_LINES - 1), "(metrics file)"
            if lines and state not in ("running", "created", "unknown"):
                lines.append(f"run {state}")
        empty = "(nothing logged yet)" if state in ("running", "created", "unknown") else "(nothing logged)"
        body = "\n".join(escape(x) for x in lines) or f"[dim]{empty}[/dim]"
        self._set("#run-log", f"[b]log[/b] [dim]{source}[/dim]\n{body}")
        self.query_one("#stop", Button).disabled = state not in ("running", "created")
        resume = self.query_one("#resume", Button)
        resume.disabled = state == "running" or self.checks.resume_refusal is not None
        resume.tooltip = self.checks.resume_refusal or "Resume the run from its last checkpoint"

    def _set(self, selector: str, text: str) -> None:
        """Update a Static only when its text changed (an idle tick then costs no repaint)."""
        if self._shown.get(selector) != text:
            self._shown[selector] = text
            self.query_one(selector, Static).update(text)

    # -- actions -------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_smooth(self) -> None:
        self.smooth = not self.smooth
        self.redraw()
        self._update_side()

    def action_epoch_view(self) -> None:
        views = [v for v in EPOCH_VIEWS if v != "error" or (self.series is not None and self.series.has_error())]
        self.epoch_view = views[(views.index(self.epoch_view) + 1) % len(views)] if self.epoch_view in views else views[0]
        self.redraw()

    def action_zoom(self) -> None:
        self.zoom_index = (self.zoom_index + 1) % len(ZOOMS)
        self.redraw()
        self._update_side()

    def action_stop(self) -> None:
        self.app.stop_run(self.run_name)  # type: ignore[attr-defined]

    def action_resume(self) -> None:
        self.app.resume_run(self.run_name)  # type: ignore[attr-defined]

    def action_samples(self) -> None:
        if self.run is None:
            self.fail(f"run {self.run_name} has not started yet", title="refused")
            return
        self.checks.update(self.run, str(self._status.get("state", "unknown")))
        model = self.checks.model
        if model is not None and model.path is None:
            self.fail(model.refusal(self.run_name), title="refused")
            return
        if model is not None and model.warning:
            self.notify(model.warning, title=f"run {self.run_name}", severity="warning", timeout=8)
        self.app.open_samples(self.run_name)  # type: ignore[attr-defined]

    def action_classify(self) -> None:
        self.app.open_classify(self.run_name)  # type: ignore[attr-defined]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()
        elif event.button.id == "resume":
            self.action_resume()

