"""The head line of the run view: state, progress (runner/progress.py), best scores, and every
warning a person should see before acting (damaged metrics or checkpoint, a process that exited)."""

from __future__ import annotations

from rich.markup import escape

from bihm_app.runner.preflight import UsableCheckpoint
from bihm_app.runner.progress import RunProgress
from bihm_app.tui import format as fmt


def info_text(name: str, status: dict, series, progress: RunProgress, view: str,
              model: UsableCheckpoint | None, exit: tuple[int, str] | None) -> str:  # fmt: skip
    """Markup for the run view's info line; ``series`` is the view's RunSeries."""
    state = str(status.get("state", "unknown"))
    best = series.best_valid()
    parts = [f"[b]{escape(name)}[/b]", fmt.status_text(state).markup, escape(progress.text()),
             f"best log p~* {fmt.pm(*best) if best else '—'}"]  # fmt: skip
    err = series.best_error()
    if err:
        parts.append(f"best error {100 * err[0]:.2f} ± {100 * err[1]:.2f} %")
    logz = series.last_epoch_value("log_z2")
    if logz:
        parts.append(f"2 log Z {fmt.pm(*logz)}")
    parts.append(f"[dim]{view}[/dim]")
    info = "  ".join(parts)
    if state in ("crashed", "diverged", "corrupt") and status.get("message"):
        info += f"\n[b]{state}:[/b] {escape(str(status['message']))}"
    for w in series.warnings[:1]:
        info += f"\n[b]warning:[/b] {escape(w)}"
    if model is not None and (model.warning or model.problem):
        info += f"\n[b]warning:[/b] {escape(model.warning or 'no readable checkpoint: ' + str(model.problem))}"
    if exit is not None:
        info += f"\n[b]the process started here exited with code {exit[0]}:[/b] {escape(exit[1])}"
    return info
