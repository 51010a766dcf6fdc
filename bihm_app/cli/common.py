"""Shared pieces of the `bihm` commands: consoles, the error edge, run/checkpoint resolution."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bihm_app.errors import BihmError
from bihm_app.runner.formats import printable
from bihm_app.store.runs import runs_root as _runs_root


class _PipeConsole(Console):
    """A Console that goes quiet when its reader goes away instead of exiting.

    Rich's default answer to a broken pipe is ``SystemExit(1)``: under ``bihm train 2>&1 | tee log``,
    Ctrl-C ends ``tee`` too, the next line raised inside the training loop and the run was marked
    ``crashed`` (message "1") instead of saved and ``stopped``. Here the stream is pointed at
    /dev/null and the command carries on (training saves and exits as on Ctrl-C)."""

    def on_broken_pipe(self) -> None:
        import os

        self.quiet = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())  # later writes (and the flush at exit) go nowhere
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


#: Results go to stdout, diagnostics and progress bars to stderr (so `--json` output stays clean).
out = _PipeConsole()
err = _PipeConsole(stderr=True)

F = TypeVar("F", bound=Callable)

#: ``--threads`` of every command that computes; the policy itself is runner/threads.py.
Threads = Annotated[
    str,
    typer.Option("--threads", help="Intra-op CPU threads: auto (from the size of the work and the machine's load) or N."),
]


def runs_root(runs_dir=None):
    """The runs folder (``--runs-dir``, else ``$BIHM_HOME/runs``); a ConfigError (one line) when
    ``--runs-dir`` names something that is not a folder (a file would read as "no runs")."""
    from pathlib import Path

    from bihm_app.errors import ConfigError

    root = _runs_root(runs_dir)
    if runs_dir is not None and Path(root).exists() and not Path(root).is_dir():
        raise ConfigError(f"--runs-dir {runs_dir}: is not a folder")
    return root


def apply_threads(option: str, model, rows: int) -> None:
    """Apply the runner's thread policy for ``model`` at ``rows`` samples per step (bad option: one line)."""
    from bihm_app.runner.threads import configure_threads

    configure_threads(option, tuple(model.sizes), rows)


def cli_errors(fn: F) -> F:
    """Show a `BihmError` as one red line on stderr and exit 1 — never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BihmError as exc:
            # the message may quote a file's contents or a name: shown as text, never as terminal codes
            err.print(f"[bold red]error:[/] {escape(printable(exc))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def as_count(value: float, option: str, minimum: int = 0) -> int:
    """A float option that counts something (``--z-samples 1e6``) as an int; NaN, inf, fractions
    and values below ``minimum`` are a ConfigError naming the option."""
    from bihm_app.errors import ConfigError

    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise ConfigError(f"{option} must be a whole number of at least {minimum}, got {value:g}")
    return int(value)


def progress_bar(rank: int = 0):
    """A transient Rich progress bar on stderr; when stderr is not a terminal, a line now and then
    instead (cli/log_progress.py); nothing on torchrun ranks other than 0."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if rank == 0 and not err.is_terminal:
        from bihm_app.cli.log_progress import LogProgress

        return LogProgress(err)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=not err.is_terminal or rank != 0)  # fmt: skip


class TaskBars:
    """The runner's ``progress(description, total) -> advance``: one transient Rich bar per task,
    closed when the task completes (so training's own progress display can follow). Use as a
    context manager, which closes a bar left open by an interruption."""

    def __init__(self, rank: int = 0) -> None:
        self.current = None
        self.rank = rank  # under torchrun only rank 0 draws

    def __enter__(self) -> "TaskBars":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None

    def __call__(self, description: str, total: int):
        self.close()
        prog = progress_bar(self.rank)
        prog.start()
        self.current = prog
        task = prog.add_task(description, total=total)
        done = [0]

        def advance(amount: int) -> None:
            prog.advance(task, amount)
            done[0] += amount
            if done[0] >= total * (1 - 1e-9) and self.current is prog:  # (fractional advances: a large K)
                self.close()

        return advance


def table_of(spec, width: int) -> list:
    """A runner ``Table`` (title, columns, rows of strings) as Rich tables fitted to ``width``
    (render/fit_table.py): the first two columns left-aligned, the others right-aligned."""
    from rich.markup import escape

    from bihm_app.render.fit_table import Column, fit_table

    columns = [Column(escape(c), "left" if i < 2 else "right", drop=spec.drop.get(c, 0),
                      short=escape(spec.short[c]) if c in spec.short else None) for i, c in enumerate(spec.columns)]  # fmt: skip
    rows = [[escape(cell) for cell in row] for row in spec.rows]
    return fit_table(columns, rows, width, title=escape(spec.title), key=spec.key, group=spec.group)
