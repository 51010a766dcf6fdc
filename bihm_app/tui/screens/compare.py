"""The compare screen: two or more runs side by side — config differences highlighted, metrics
with standard errors, and their validation curves overlaid.

The whole screen is one scrolling page (the tables are as tall as their rows, never scrolled on
their own), so PageDown and End reach the last configuration key. The metrics table has a row per
run where that fits the width, else (80 columns) a column per run, so that every metric — the
cached test estimate too — stays on screen.
"""

from __future__ import annotations

import time

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

from bihm_app.runner.compare import METRICS, RunFacts, compare_runs, config_differences, write_compare_report
from bihm_app.tui import format as fmt
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.curves import Curve
from bihm_app.tui.widgets.key_footer import KeyFooter
from bihm_app.tui.widgets.metric_chart import MetricChart

#: The metrics table's headings after the run name: per run, in this order.
HEADINGS = ("epochs", "best", *[label for _, label in METRICS], "ESS", "test (cached)")


def metric_cells(f: RunFacts) -> list[str | Text]:
    """One run's cells under :data:`HEADINGS` (ESS in percent of K, as ``bihm train``/``eval`` print it)."""
    if f.problem and not f.metrics:
        return [str(f.epochs), "—", Text(f.problem[:60], style="red"), "", "", "", ""]
    cells = [fmt.pm(*f.metrics.get(col, (None, None))) for col, _ in METRICS]
    best = "—" if f.best_epoch is None else f"ep {f.best_epoch}"
    test = "—" if f.test is None else f"{fmt.pm(f.test[0], f.test[1])} {f.test[2]}"
    return [str(f.epochs), best, *cells, fmt.percent(f.ess), test]


def table_width(columns: list[list[str | Text]]) -> int:
    """Columns a DataTable needs for these columns (heading first in each), one cell of padding each side."""
    return sum(max(cell_len(str(c)) for c in col) + 2 for col in columns)


class StaticTable(DataTable):
    """A DataTable that is part of the page: as tall as its rows, never focused, scrolled with the page."""

    can_focus = False


class CompareScreen(BihmScreen):
    """Side-by-side comparison of the given runs."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs list"),
        Binding("r", "report", "Report", tooltip="Write a markdown + PNG report of these runs (bihm report, cached numbers)"),
        Binding("a", "all_config", "All config", tooltip="Show every config key, not only the differing ones"),
    ]
    AUTO_FOCUS = "#compare-body"  # PageDown, End, arrows scroll the whole page

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.facts: list[RunFacts] = []
        self.show_all = False
        self.per_run_columns = False  # the metrics table is transposed (a column per run)
        self.report_started: float | None = None  # while a report is being written: when it started

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="compare-body"):
            yield Static("", id="compare-status")
            yield Static("[b]metrics at each run's best epoch[/b] (± one standard error)", classes="section")
            yield StaticTable(id="compare-metrics", cursor_type="none", show_cursor=False)
            yield MetricChart("validation log p~* ± 2 se", "epoch", empty="no validation rows yet", id="compare-chart")
            yield Static("[b]configuration[/b] (differences highlighted)", classes="section", id="compare-config-title")
            yield StaticTable(id="compare-config", cursor_type="none", show_cursor=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "compare " + " · ".join(self.names)
        self.query_one("#compare-status", Static).display = False
        self.in_thread(compare_runs, self.root, self.names, done=self._show, group="compare")
        self.set_interval(1.0, self._show_report_status)

    def on_resize(self) -> None:
        if self.facts:
            self._show_metrics()

    def _show(self, facts: list[RunFacts]) -> None:
        self.facts = facts
        self._show_metrics()
        self.query_one("#compare-chart", MetricChart).show([Curve(f.name, *f.curve) for f in facts if f.curve is not None])
        self._show_config()
        problems = [f"{f.name}: {f.problem}" for f in facts if f.problem]
        if problems:
            self.notify("\n".join(problems)[:400], title="some runs have problems", severity="warning")

    def _show_metrics(self) -> None:
        """A row per run if the table fits the width, else a column per run."""
        rows = [metric_cells(f) for f in self.facts]
        by_run = [["run", *[f.name for f in self.facts]]] + [[h, *[r[i] for r in rows]] for i, h in enumerate(HEADINGS)]
        transposed = table_width(by_run) > self.query_one("#compare-body").size.width - 3  # padding, scroll bar
        if transposed == self.per_run_columns and self.query_one("#compare-metrics", DataTable).row_count:
            return
        self.per_run_columns = transposed
        table = self.query_one("#compare-metrics", DataTable)
        table.clear(columns=True)
        if transposed:
            table.add_columns("", *[f.name for f in self.facts])
            for i, heading in enumerate(HEADINGS):
                table.add_row(heading, *[r[i] for r in rows])
        else:
            table.add_columns("run", *HEADINGS)
            for f, r in zip(self.facts, rows):
                table.add_row(f.name, *r)

    def _show_config(self) -> None:
        table = self.query_one("#compare-config", DataTable)
        table.clear(columns=True)
        table.add_columns("key", *[f.name for f in self.facts])
        rows = config_differences(self.facts)
        shown = [r for r in rows if r[2] or self.show_all]
        for key, vals, differs in shown:
            style = "bold reverse" if differs else ""
            table.add_row(Text(key, style=style), *[Text(v, style=style) for v in vals])
        n_diff = sum(1 for r in rows if r[2])
        what = "all keys" if self.show_all else "differing keys only; a: all"
        self.query_one("#compare-config-title", Static).update(
            f"[b]configuration[/b] — {n_diff} of {len(rows)} keys differ ({what})"
        )

    def action_back(self) -> None:
        self.app.pop_screen()

    # -- the report ------------------------------------------------------------------------------
    def action_report(self) -> None:
        """Write a report in a worker; a second one is refused while it runs (one folder per press)."""
        if self.report_started is not None:
            elapsed = time.monotonic() - self.report_started
            self.notify(f"a report is already being written ({elapsed:.0f} s so far)", title="report", severity="warning")
            return
        self.report_started = time.monotonic()
        self._show_report_status()
        self.in_thread(write_compare_report, self.root, self.names, group="report", done=self._report_written,
                       failed=self._report_failed)  # fmt: skip

    def _show_report_status(self) -> None:
        status = self.query_one("#compare-status", Static)
        status.display = self.report_started is not None
        if self.report_started is not None:
            elapsed = time.monotonic() - self.report_started
            status.update(f"[b]writing the report …[/b] {elapsed:.0f} s (its pictures take a while)")

    def _report_written(self, path) -> None:
        self.report_started = None
        self._show_report_status()
        self.notify(f"report written:\n{self.toast_path(path)}", title="report", timeout=12)

    def _report_failed(self, _line: str) -> None:
        self.report_started = None
        self._show_report_status()

    def action_all_config(self) -> None:
        self.show_all = not self.show_all
        self._show_config()
