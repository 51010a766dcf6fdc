"""What a training run tells the world, as events to reporters instead of branches in the loop.

The loop (``runner/train_loop.py``) emits one event per thing that happened — ``start``,
``update`` (a minibatch), ``phase``, ``epoch`` (a validated epoch), ``message``, ``stopped`` (a
signal or the time budget), ``rolled_back`` (NaN/inf), ``crashed``, ``finish`` — to a
:class:`Reporters` fan-out. Which reporters listen is decided once, in :func:`reporters_for`:

* :class:`MetricsFileReporter`: the run's SWMR metrics file (what the dashboard tails);
* :class:`StatusFileReporter`: ``status.json`` (running / finished / stopped / crashed / diverged);
* the front-end's own reporter: the CLI's Rich progress bar, nothing for the dashboard's child
  process (``bihm train --quiet``), the Python API or tests.

Under torchrun rank 0 gets all three and the other ranks only the front-end's (which the CLI
makes quiet there): the rank is a choice of reporters, not a branch in the loop.
"""

from __future__ import annotations

import os
import socket

from bihm_app.errors import BihmError, TrainingDiverged

__all__ = ["Reporter", "Reporters", "MetricsFileReporter", "StatusFileReporter", "reporters_for"]


class Reporter:
    """The events of a run; every method does nothing by default (tests, the Python API)."""

    def start(self, run, total_epochs: int, start_epoch: int, batches_per_epoch: int, resumed: bool) -> None: ...
    def update(self, step: int, batch_in_epoch: int, objective: float) -> None: ...
    def phase(self, text: str) -> None: ...
    def epoch(self, row: dict, improved: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def stopped(self, signal: str) -> None: ...
    def rolled_back(self, text: str) -> None: ...
    def crashed(self, exc: BaseException) -> None: ...
    def finish(self, reason: str) -> None: ...
    def close(self) -> None: ...


class Reporters(Reporter):
    """Sends every event to each reporter in turn (files first, then the front-end's)."""

    def __init__(self, reporters: list[Reporter]) -> None:
        self.reporters = list(reporters)

    def _each(name: str):  # noqa: N805 - builds the fan-out methods below
        def send(self, *args, **kwargs):
            for r in self.reporters:
                getattr(r, name)(*args, **kwargs)

        send.__name__ = name
        return send

    start = _each("start")
    update = _each("update")
    phase = _each("phase")
    epoch = _each("epoch")
    message = _each("message")
    stopped = _each("stopped")
    rolled_back = _each("rolled_back")
    crashed = _each("crashed")
    finish = _each("finish")
    close = _each("close")
    del _each


class MetricsFileReporter(Reporter):
    """Appends updates, epochs and events to a new ``metrics-<n>.h5`` of the run (opened at start)."""

    def __init__(self, training_run) -> None:
        self.tr = training_run
        self.writer = None

    def start(self, run, total_epochs, start_epoch, batches_per_epoch, resumed) -> None:
        from bihm_app.store.metrics import MetricsWriter

        p = self.tr.progress
        self.writer = MetricsWriter(run.next_metrics_path(), {"run": run.name, "config": self.tr.meta()["config"],
                                                              "start_step": p.step, "start_epoch": p.epoch, "resumed": resumed,
                                                              "batches_per_epoch": int(batches_per_epoch)})  # fmt: skip

    def phase(self, text) -> None:
        # "training", "validating", "estimating 2 log Z": readers (runner/progress.py) show what runs now
        self._event("phase", text)

    def update(self, step, batch_in_epoch, objective) -> None:
        p = self.tr.progress
        self.writer.log_update(step, p.epoch, p.elapsed, objective)

    def epoch(self, row, improved) -> None:
        self.writer.log_epoch(row)

    def stopped(self, signal) -> None:
        self._event("stopped", signal)

    def rolled_back(self, text) -> None:
        self._event("rollback", text)

    def crashed(self, exc) -> None:
        # close before status.json is written: a file whose write failed (disk full) keeps its committed rows
        self.close()

    def _event(self, kind: str, text: str) -> None:
        if self.writer is not None:
            p = self.tr.progress
            self.writer.log_event(p.step, p.elapsed, kind, text)

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()  # never raises


class StatusFileReporter(Reporter):
    """Keeps ``status.json`` current: running (with pid, host, epoch, step and the best validation
    score), then finished, stopped, crashed or diverged."""

    def __init__(self, training_run) -> None:
        self.tr = training_run

    def _write(self, state: str, **fields) -> None:
        p = self.tr.progress
        self.tr.run.write_status(state, pid=os.getpid(), epoch=p.epoch, step=p.step, **fields)

    def start(self, run, total_epochs, start_epoch, batches_per_epoch, resumed) -> None:
        self._write("running", host=socket.gethostname())

    def epoch(self, row, improved) -> None:
        self._write("running", **self.tr.status_fields())

    def crashed(self, exc) -> None:
        # a crash or a second Ctrl-C: the last checkpoint stays the resumable state
        state = "stopped" if isinstance(exc, KeyboardInterrupt) else ("diverged" if isinstance(exc, TrainingDiverged) else "crashed")
        try:
            self._write(state, message=str(exc)[:300] or type(exc).__name__)
        except BihmError:
            pass  # e.g. the disk is too full even for status.json: the original error is the one to report

    def finish(self, reason) -> None:
        p = self.tr.progress
        self._write("finished" if p.finished or not self.tr.stop_signal else "stopped", **self.tr.status_fields(), message=reason)


def reporters_for(training_run, front_end: Reporter | None) -> Reporters:
    """The reporters of one process of a run: the files on rank 0, the front-end's everywhere."""
    files: list[Reporter] = []
    if training_run.rank == 0:
        files = [MetricsFileReporter(training_run), StatusFileReporter(training_run)]
    return Reporters(files + [front_end or Reporter()])
