"""The compare screen: two or more runs side by side — config differences highlighted, metrics
with standard errors, and their validation curves overlaid."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

from bihm_app.runner.compare import METRICS, RunFacts, compare_runs, config_differences, write_compare_report
from bihm_app.tui import format as fmt
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.metric_chart import MetricChart
from bihm_app.tui.widgets.curves import Curve
from bihm_app.tui.widgets.key_footer import KeyFooter



class CompareScreen(BihmScreen):
    """Side-by-side comparison of the given runs."""

    BINDINGS = [
        Binding("escape", "back", "Back", tooltip="Back to the runs list"),
        Binding("a", "all_config", "All config", tooltip="Show every config key, not only the differing ones"),
        Binding("r", "report", "Report", tooltip="Write a markdown + PNG report of these runs (bihm report, cached numbers)"),
    ]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = list(names)
        self.facts: list[RunFacts] = []
        self.show_all = False

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with VerticalScroll(id="compare-body"):
            yield Static("[b]metrics at each run's best epoch[/b] (± one standard error)", classes="section")
            yield DataTable(id="compare-metrics", cursor_type="row", show_cursor=False)
            yield MetricChart("validation log p~* ± 2 se", "epoch", empty="no validation rows yet", id="compare-chart")
            yield Static("[b]configuration[/b] (differences highlighted)", classes="section", id="compare-config-title")
            yield DataTable(id="compare-config", cursor_type="row", show_cursor=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "compare " + " · ".join(self.names)
        self.in_thread(compare_runs, self.root, self.names, done=self._show, group="compare")

    def _show(self, facts: list[RunFacts]) -> None:
        self.facts = facts
        table = self.query_one("#compare-metrics", DataTable)
        table.clear(columns=True)
        table.add_columns("run", "epochs", "best", *[label for _, label in METRICS], "ESS", "test (cached)")
        for f in facts:
            if f.problem and not f.metrics:
                table.add_row(f.name, str(f.epochs), "—", Text(f.problem[:60], style="red"), "", "", "", "")
                continue
            cells = [fmt.pm(*f.metrics.get(col, (None, None))) for col, _ in METRICS]
            best = "—" if f.best_epoch is None else f"ep {f.best_epoch}"
            test = "—" if f.test is None else f"{fmt.pm(f.test[0], f.test[1])} {f.test[2]}"
            table.add_row(f.name, str(f.epochs), best, *cells, fmt.num(f.ess, 1), test)
        self.query_one("#compare-chart", MetricChart).show([Curve(f.name, *f.curve) for f in facts if f.curve is not None])
        self._show_config()
        problems = [f"{f.name}: {f.problem}" for f in facts if f.problem]
        if problems:
            self.notify("\n".join(problems)[:400], title="some runs have problems", severity="warning")

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

    def action_report(self) -> None:
        self.notify("writing the report …", timeout=3)
        self.in_thread(write_compare_report, self.root, self.names, group="report",
                       done=lambda path: self.notify(f"report written: {path}", title="report", timeout=12))  # fmt: skip

    def action_all_config(self) -> None:
        self.show_all = not self.show_all
        self._show_config()
