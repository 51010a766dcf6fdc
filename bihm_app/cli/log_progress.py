"""Progress for long work when stderr is not a terminal (``nohup``, a batch job, a pipe to ``tee``).

Rich's bars draw nothing there, so an evaluation or a 2 log Z estimate of hours said nothing from
start to end. :class:`LogProgress` takes the bar's place with the same calls (``add_task``,
``advance``, ``update``, ``start``, ``stop``) and writes one plain line per task now and then —
the first after :data:`FIRST_S` seconds, then at most every :data:`EVERY_S` seconds (environment
``BIHM_PROGRESS_EVERY=SECONDS`` sets both) — with the count done, the elapsed time and, when the
total is known, the time left at the rate so far:

    2 log Z: 310,000/1,000,000 (31 %), 5m 10s elapsed, about 11m 30s left
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from bihm_app.runner.progress import duration

FIRST_S = 30.0
EVERY_S = 300.0


def _intervals() -> tuple[float, float]:
    raw = os.environ.get("BIHM_PROGRESS_EVERY", "")
    try:
        every = float(raw)
    except ValueError:
        return FIRST_S, EVERY_S
    return (every, every) if every > 0 else (FIRST_S, EVERY_S)


@dataclass
class _Task:
    description: str
    total: float | None
    start: float
    done: float = 0.0
    last: float | None = None  # when its last line was written


class LogProgress:
    """A stand-in for ``rich.progress.Progress`` that logs lines instead of drawing a bar."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.clock = console, clock
        self.first, self.every = _intervals()
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def add_task(self, description: str, total: float | None = None, **_ignored) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = _Task(description, total, self.clock())
        return task_id

    def update(self, task_id: int, total: float | None = None, **_ignored) -> None:
        if total is not None:
            self.tasks[task_id].total = total

    def advance(self, task_id: int, amount: float = 1) -> None:
        t = self.tasks[task_id]
        t.done += amount
        now = self.clock()
        wait = self.first if t.last is None else self.every
        if now - (t.start if t.last is None else t.last) >= wait and not (t.total and t.done >= t.total * (1 - 1e-9)):
            t.last = now
            self.console.print(escape(self.line(t, now)), highlight=False, soft_wrap=True)

    @staticmethod
    def line(t: _Task, now: float) -> str:
        elapsed = now - t.start
        if not t.total:
            return f"{t.description}: {t.done:,.0f} done, {duration(elapsed)} elapsed"
        left = elapsed * (t.total - t.done) / t.done if t.done > 0 else float("inf")
        eta = f"about {duration(left)} left" if left != float("inf") else "time left unknown"
        return f"{t.description}: {t.done:,.0f}/{t.total:,.0f} ({100 * t.done / t.total:.0f} %), {duration(elapsed)} elapsed, {eta}"
