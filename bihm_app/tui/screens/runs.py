"""The runs screen: every run under the runs root, refreshed every 2 s (in a thread worker)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static

from bihm_app.runner.summaries import SPARK_WIDTH, RunRow, TrendCache, load_rows
from bihm_app.store.runs import RunSummary
from bihm_app.tui import format as fmt
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.key_footer import KeyFooter
from bihm_app.tui.widgets.runs_table import RunsTable

REFRESH_S = 2.0
#: (label, key, width); fixed widths keep the layout stable while values change (None: fit the names).
COLUMNS = (("", "mark", 1), ("run", "name", None), ("status", "status", 8), ("data", "data", 8),
           ("layers", "layers", 10), ("epochs", "epoch", 10), ("progress", "progress", 18), ("best log p~*", "best", 12),
           ("trend", "trend", SPARK_WIDTH), ("age", "age", 10))  # fmt: skip
#: Columns left out, in this order, when the table is too narrow for all of them (80 columns).
OPTIONAL_COLUMNS = ("trend", "layers", "data", "progress")
#: Columns that take free width for longer values, up to this wide (a deep net's layers at 200 columns).
GROWING_COLUMNS = {"layers": 40}


class RunsScreen(BihmScreen):
    """All runs: status, data, layers, progress, best validation bound and its trend."""

    HUMAN_NAME = "runs list"
    DEFAULT_CSS = """
    RunsScreen #runs-empty { height: 1fr; width: 1fr; content-align: center middle; text-align: center; }
    """

    #: Most important first: the footer shows the first ones that fit (the rest under "? more").
    BINDINGS = [
        Binding("enter", "open_run", "Open", tooltip="Open the selected run's live view"),
        Binding("n", "new_run", "New run", tooltip="Start a new training run"),
        Binding("s", "samples", "Samples", tooltip="Samples of the selected run"),
        Binding("c", "compare", "Compare", tooltip="Compare the marked runs (or the selected one)"),
        Binding("space", "mark", "Mark", tooltip="Mark/unmark the run for comparison"),
        Binding("x", "stop", "Stop", tooltip="Stop the selected run (SIGINT: it saves a checkpoint)"),
        Binding("r", "resume", "Resume", tooltip="Resume the selected run from its last checkpoint"),
        Binding("i", "inpaint", "Inpaint", tooltip="Inpainting with the selected run"),
        Binding("l", "layers", "Layers", tooltip="Layer-wise generation of the selected run"),
        Binding("y", "classify", "Classify", tooltip="Classify digits with the selected semi-supervised run"),
        Binding("f5", "refresh", "Refresh", tooltip="Re-read the runs folder now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.marked: set[str] = set()
        self.refreshes = 0
        self._cache = TrendCache()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield RunsTable(COLUMNS, OPTIONAL_COLUMNS, GROWING_COLUMNS, id="runs-table", zebra_stripes=True)
        yield Static("", id="runs-empty")
        yield Static("", id="runs-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = str(self.root)
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def on_screen_resume(self) -> None:
        self.action_refresh()

    # -- data ----------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.in_thread(load_rows, self.root, self._cache, done=self._show_rows, group="runs-refresh")

    def _show_rows(self, rows: list[RunRow]) -> None:
        self.rows = rows
        self.refreshes += 1
        table = self.query_one("#runs-table", RunsTable)
        table.show_rows([(r.summary.name, self._cells(r)) for r in rows])
        self._show_detail()
        table.display = bool(rows)
        empty = self.query_one("#runs-empty", Static)
        empty.display = not rows
        if not rows:
            empty.update(
                f"[b]No runs yet[/b] under {fmt.escape(str(self.root))}\n\n"
                "Start one here: press [b]n[/b] (the new-run form)\n"
                "or in a shell:  [b]bihm train --data bmnist --layers 200,200[/b]"
            )

    def _cells(self, r: RunRow) -> list:
        s = r.summary
        return [
            "●" if s.name in self.marked else " ",
            fmt.printable(s.name),
            fmt.status_text("damaged" if r.warning or r.metrics_problem else s.status),
            s.data or "—",
            fmt.layers_text(s.layers),
            r.progress.epoch_text() if r.progress is not None else ("—" if s.epoch is None else str(s.epoch)),
            (r.progress.short() if r.progress is not None else "") or "—",
            fmt.num(s.best_valid),
            r.trend,
            fmt.age(s.age_s),
        ]

    def selected_name(self) -> str | None:
        return self.query_one("#runs-table", RunsTable).selected_key()

    def selected(self) -> RunSummary | None:
        row = self.selected_row()
        return row.summary if row is not None else None

    def selected_row(self) -> RunRow | None:
        name = self.selected_name()
        return next((r for r in self.rows if r.summary.name == name), None)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        if self.app.is_running and self.is_attached:  # a highlight queued before shutdown removed the table
            self._show_detail()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open_run()

    def _show_detail(self) -> None:
        row = self.selected_row()
        detail = self.query_one("#runs-detail", Static)
        if row is None:
            detail.update("")
            return
        s = row.summary
        if row.refusal and not row.no_checkpoint:
            detail.update(f"[b]{fmt.escape(s.name)}[/b] is corrupt: {fmt.escape(row.model.problem or s.error or '')}")
            return
        if row.warning or row.metrics_problem:
            detail.update(f"[b]{fmt.escape(s.name)}[/b] [b]warning:[/b] {fmt.escape(row.warning or row.metrics_problem)}")
            return
        if s.error or s.note:
            detail.update(f"[b]{fmt.escape(s.name)}[/b] " + (f"is corrupt: {fmt.escape(s.error)}" if s.error else fmt.escape(s.note)))
            return
        marked = f"   marked for compare: {', '.join(sorted(self.marked))}" if self.marked else ""
        method = f"{s.method} " if s.method else ""
        progress = f"\n{row.progress.text()}" if row.progress is not None and row.progress.phase else ""
        detail.update(f"[b]{fmt.escape(s.name)}[/b]  {method}{fmt.escape(s.path)}{marked}{progress}")

    # -- actions -------------------------------------------------------------------------------
    def _need_run(self) -> RunSummary | None:
        s = self.selected()
        if s is None:
            why = "there are no runs yet (n starts one)" if not self.rows else "select a run first"
            self.notify(f"No run selected: {why}", severity="warning")
        return s

    def _need_model(self, doing: str = "draw") -> RunSummary | None:
        """The selected run if pictures can be made of it (``doing``: or what else it is for) — the
        run view's check (runner/preflight)."""
        s = self._need_run()
        row = self.selected_row()
        if s is None or row is None:
            return None
        refusal = row.refusal_to(doing)
        if refusal:
            self.fail(refusal, title="refused")
            return None
        if row.warning:
            self.notify(row.warning, title=f"run {s.name}", severity="warning", timeout=8)
        return s

    def action_open_run(self) -> None:
        s = self._need_run()
        if s is not None:
            self.app.open_run(s.name)  # type: ignore[attr-defined]

    def action_new_run(self) -> None:
        self.app.action_new_run()  # type: ignore[attr-defined]

    def action_samples(self) -> None:
        s = self._need_model()
        if s is not None:
            self.app.open_samples(s.name)  # type: ignore[attr-defined]

    def action_inpaint(self) -> None:
        s = self._need_model()
        if s is not None:
            self.app.open_inpaint(s.name)  # type: ignore[attr-defined]

    def action_layers(self) -> None:
        s = self._need_model()
        if s is not None:
            self.app.open_layers(s.name)  # type: ignore[attr-defined]

    def action_classify(self) -> None:
        s = self._need_model("classify with")
        if s is not None:
            self.app.open_classify(s.name)  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        s = self._need_run()
        if s is None:
            return
        self.marked ^= {s.name}
        self.query_one("#runs-table", RunsTable).set_cell(s.name, "mark", "●" if s.name in self.marked else " ")
        self._show_detail()

    def action_compare(self) -> None:
        names = sorted(self.marked)
        if not names:
            s = self._need_run()
            names = [s.name] if s else []
        if names:
            self.app.open_compare(names)  # type: ignore[attr-defined]

    def action_stop(self) -> None:
        s = self._need_run()
        if s is not None:
            self.app.stop_run(s.name)  # type: ignore[attr-defined]
            self.action_refresh()

    def action_resume(self) -> None:
        s = self._need_run()
        if s is not None:
            self.app.resume_run(s.name)  # type: ignore[attr-defined]
            self.action_refresh()

