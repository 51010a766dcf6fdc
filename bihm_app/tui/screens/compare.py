"""The compare screen: two or more runs side by side — config differences highlighted, metrics
with standard errors, and their validation curves overlaid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from bihm_app.errors import BihmError
from bihm_app.store.checkpoint import read_meta
from bihm_app.store.metrics import read_run_metrics
from bihm_app.store.runs import open_run
from bihm_app.tui import format as fmt
from bihm_app.tui.screens.base import BihmScreen
from bihm_app.tui.widgets.metric_chart import MetricChart
from bihm_app.tui.widgets.run_metrics import Curve

METRICS = (("valid_log_ptilde", "log p~*"), ("valid_log_p", "log p"), ("log_z2", "2 log Z"))


@dataclass
class RunFacts:
    """What the comparison needs of one run."""

    name: str
    config: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    epochs: int = 0
    best_epoch: int | None = None
    ess: float | None = None
    test: tuple[float, float, str] | None = None  # cached test log p*(x) (or log p̃*(x)): mean, se, label
    curve: Curve | None = None
    problem: str | None = None


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """{'train': {'K': 10}} -> {'train.K': '10'} (lists joined by commas)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(str(x) for x in v)
        else:
            out[key] = str(v)
    return out


def run_facts(root: Path, name: str) -> RunFacts:
    """Config, best-epoch metrics (± se) and the validation curve of one run; problems go into
    ``problem`` instead of being raised."""
    facts = RunFacts(name)
    try:
        run = open_run(name, root)
    except BihmError as exc:
        facts.problem = str(exc)
        return facts
    for path in (run.best_path, run.checkpoint_path):
        if path.exists():
            try:
                facts.config = flatten(read_meta(path).get("config", {}))
                break
            except BihmError as exc:
                facts.problem = str(exc)
    facts.test = cached_test(run.path)
    rm = read_run_metrics(run.path)
    if not facts.config:
        for info in rm.run_info.values():
            if isinstance(info, dict) and isinstance(info.get("config"), dict):
                facts.config = flatten(info["config"])
    if rm.warnings and facts.problem is None:
        facts.problem = rm.warnings[0]
    e = rm.epochs
    facts.epochs = len(e)
    v = e["valid_log_ptilde"].astype(float) if len(e) else np.zeros(0)
    ok = np.isfinite(v)
    if ok.any():
        i = int(np.flatnonzero(ok)[np.argmax(v[ok])])
        facts.best_epoch = int(e["epoch"][i])
        for col, _ in METRICS:
            facts.metrics[col] = (float(e[col][i]), float(e[f"{col}_se"][i]))
        facts.ess = float(e["ess"][i])
        facts.curve = Curve(name, e["epoch"][ok].astype(float), v[ok], np.nan_to_num(e["valid_log_ptilde_se"][ok].astype(float)))
    return facts


def cached_test(run_dir: Path) -> tuple[float, float, str] | None:
    """The cached test estimate of best.h5 (``bihm eval``/``report``/``repro``): log p*(x) when
    2 log Z is cached too, else log p̃*(x); None when nothing current is cached."""
    from bihm_app.runner.evaluation import log_pstar, run_cache
    from bihm_app.runner.report import headline_estimate

    cache = run_cache(run_dir)
    h = headline_estimate(cache)
    if h is None:
        return None
    zs = [z for z in cache.log_z2 if z.get("inner") == 1]
    if zs:
        mean, se = log_pstar(h, max(zs, key=lambda z: z["samples"]))
        return mean, se, f"p* K={h['K']}"
    return h["log_ptilde"], h.get("log_ptilde_se") or math.nan, f"p~* K={h['K']}"


def write_compare_report(root: Path, names: list[str]) -> Path:
    """A `bihm report` of the compared runs from what is cached (no K sweep computed), pictures included."""
    from datetime import datetime

    from bihm_app.runner.report import ReportOptions, write_report

    out = Path(root).parent / "reports" / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return write_report(root, names, out, ReportOptions(compute=False, device="cpu"), command="dashboard: compare → report")


def compare_runs(root: Path, names: list[str]) -> list[RunFacts]:
    return [run_facts(root, n) for n in names]


def config_differences(facts: list[RunFacts]) -> list[tuple[str, list[str], bool]]:
    """(key, values per run, differs?) for every config key, differing keys first."""
    keys = sorted({k for f in facts for k in f.config})
    rows = []
    for k in keys:
        vals = [f.config.get(k, "—") for f in facts]
        rows.append((k, vals, len(set(vals)) > 1))
    return sorted(rows, key=lambda r: (not r[2], r[0]))


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
        yield Footer()

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
        self.query_one("#compare-chart", MetricChart).show([f.curve for f in facts if f.curve is not None])
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
