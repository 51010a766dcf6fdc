"""Rich rendering of a training run's progress (a Reporter for the runner)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bihm_app.runner.train_loop import Reporter


#: Between the fields of a per-epoch line; a line breaks only here, never inside a field.
FIELD_GAP = "  "


def wrap_fields(fields: list[str], width: int, indent: int = 0, gap: str = FIELD_GAP) -> str:
    """Rich-markup ``fields`` joined by ``gap``, broken into lines of at most ``width`` cells
    between fields only (a label stays with its number: "2 log Z -1.45 ± 0.01" is one field);
    continuation lines start with ``indent`` spaces. A field wider than a line gets a line of its own."""
    from rich.text import Text

    lines: list[str] = []
    line, used = "", 0
    for field in fields:
        n = Text.from_markup(field).cell_len
        if line and used + len(gap) + n > width:
            lines.append(line)
            line, used = " " * indent + field, indent + n
        elif line:
            line, used = line + gap + field, used + len(gap) + n
        else:
            line, used = field, n
    lines.append(line)
    return "\n".join(lines)


def epoch_fields(row: dict, improved: bool) -> list[str]:
    """The fields of the line printed after each epoch (each a label with its value)."""
    best = ["[green]★ best[/]"] if improved else []
    head = [f"epoch {row['epoch']:>4}", f"train {row['train_objective']:8.2f}"]
    err = row.get("valid_error")
    if err is not None and math.isfinite(err):
        return head + [
            f"valid error {100 * err:.2f} ± {100 * row['valid_error_se']:.2f} %",
            f"log p̃*(y|x) {_pm(row['valid_log_py'], row['valid_log_py_se'])}",
            f"log p̃*(x) {_pm(row['valid_log_ptilde'], row['valid_log_ptilde_se'])}",
            f"2 log Z {_pm(row['log_z2'], row['log_z2_se'])}",
        ] + best
    return head + [
        f"valid log p̃* {_pm(row['valid_log_ptilde'], row['valid_log_ptilde_se'])}",
        f"log p {_pm(row['valid_log_p'], row['valid_log_p_se'])}",
        f"2 log Z {_pm(row['log_z2'], row['log_z2_se'])}",
        f"ESS {100 * row['ess']:.1f}%",
    ] + best


def _pm(mean: float, se: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.2f} ± {se:.2f}" if se is not None and math.isfinite(se) else f"{mean:.2f}"


class RichReporter(Reporter):
    """A progress bar over the batches of each epoch plus one line per epoch."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.best: float | None = None
        self.best_error: float | None = None  # semi-supervised runs: lowest validation error
        self.progress: Progress | None = None
        self.task = None
        self._desc = "epoch"

    def start(self, run, total_epochs, start_epoch, batches_per_epoch, resumed) -> None:
        verb = "resuming" if resumed else "training"
        if not self.quiet:
            self.console.print(f"{verb} run [bold]{run.name}[/] in {run.path} (epoch {start_epoch + 1}/{total_epochs})", highlight=False)
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[obj]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=False,
            )  # fmt: skip
            self.progress.start()
            self.task = self.progress.add_task(f"epoch {start_epoch + 1}", total=batches_per_epoch, obj="")
        self._per_epoch = batches_per_epoch
        self._epoch = start_epoch

    def update(self, step, batch_in_epoch, objective) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=batch_in_epoch, obj=f"batch log p̃* {objective:8.2f}")

    def phase(self, text) -> None:
        if self.progress is not None and text != "training":
            self.progress.update(self.task, obj=text + " …")

    def epoch(self, row, improved) -> None:
        if improved:  # the epoch best.h5 now holds (by the run's criterion: log p for RWS, the error if semi-supervised)
            self.best = row["valid_log_ptilde"]
        err = row.get("valid_error")
        semi = err is not None and math.isfinite(err)
        if semi:
            self.best_error = err if self.best_error is None else min(self.best_error, err)
        if self.quiet:
            return
        console = self.progress.console if self.progress is not None else self.console
        indent = len(f"epoch {row['epoch']:>4}") + len(FIELD_GAP)  # continuation lines start under "train"
        line = wrap_fields(epoch_fields(row, improved), console.width, indent)
        if self.progress is not None:
            self.progress.console.print(line, highlight=False)
            self.progress.reset(self.task, total=self._per_epoch, description=f"epoch {row['epoch'] + 1}", obj="")

    def message(self, text) -> None:
        (self.progress.console if self.progress else self.console).print(f"[yellow]{text}[/]", highlight=False)

    def finish(self, reason) -> None:
        if self.progress is not None:
            if self.progress.tasks and self.progress.tasks[0].completed == 0:
                self.progress.remove_task(self.task)  # the next epoch's empty bar: not shown
            self.progress.stop()
