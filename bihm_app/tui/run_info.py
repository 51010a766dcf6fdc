"""The head line of the run view: state, progress (runner/progress.py), best scores, and every
warning a person should see before acting (damaged metrics or checkpoint, a process that exited)."""

from __future__ import annotations

from rich.text import Text

from bihm_app.runner.formats import ended
from bihm_app.runner.preflight import UsableCheckpoint
from bihm_app.runner.progress import RunProgress
from bihm_app.store.runs import RunSummary
from bihm_app.tui import format as fmt


def info_text(name: str, status: dict, series, progress: RunProgress, view: str,
              model: UsableCheckpoint | None, exit: tuple[int, str] | None, width: int = 0,
              saved: RunSummary | None = None) -> str:  # fmt: skip
    """Markup for the run view's info line; ``series`` is the view's RunSeries; ``saved``: the run's
    summary from its checkpoints (runner/summaries.py:SavedCounts), whose best score stands when the
    metrics files hold none. With ``width`` the fields are laid out in lines of that many cells, a
    field never split (a terminal wrapping "… ± 0.37  2" / "log Z -4.09" reads as another number)."""
    state = str(status.get("state", "unknown"))
    best = series.best_valid()
    if not best and saved is not None and saved.best_valid is not None:
        best_text = f"{fmt.num(saved.best_valid)} (checkpoint)"
    else:
        best_text = fmt.pm(*best) if best else "—"
    parts = [f"[b]{fmt.escape(name)}[/b]", fmt.status_text(state).markup, fmt.escape(progress.text()), f"best log p~* {best_text}"]
    if series.warnings or (model is not None and model.warning):  # as the runs table marks the run
        parts.insert(2, fmt.status_text("damaged").markup)
    err = series.best_error()
    if err:
        parts.append(f"best error {100 * err[0]:.2f} ± {100 * err[1]:.2f} %")
    logz = series.last_epoch_value("log_z2")
    if logz:
        parts.append(f"2 log Z {fmt.pm(*logz)}")
    parts.append(f"[dim]{view}[/dim]")
    info = _lines(parts, width)
    if state in ("crashed", "diverged", "corrupt") and status.get("message"):
        info += f"\n[b]{state}:[/b] {fmt.escape(status['message'], 300)}"
    for w in series.warnings[:1]:
        info += f"\n[b]warning:[/b] {fmt.escape(w)}"
    if model is not None and model.none_saved:  # not damaged: none written yet (starting, or a first epoch runs)
        info += "" if state in ("running", "created") else "\n[b]no checkpoint:[/b] it stopped before its first save"
    elif model is not None and (model.warning or model.problem):
        info += f"\n[b]warning:[/b] {fmt.escape(model.warning or 'no readable checkpoint: ' + str(model.problem))}"
    if exit is not None:
        info += f"\n[b]the process started here {ended(exit[0])}:[/b] {fmt.escape(exit[1])}"
    return info


def _lines(parts: list[str], width: int, sep: str = "  ") -> str:
    """``parts`` (markup) joined by ``sep``, broken into lines of at most ``width`` cells between
    parts only (a part longer than a line gets one of its own, wrapped by the widget)."""
    if width <= 0:
        return sep.join(parts)
    lines, line, used = [], [], 0
    for part in parts:
        n = Text.from_markup(part).cell_len
        if line and used + len(sep) + n > width:
            lines.append(sep.join(line))
            line, used = [], 0
        used += (len(sep) if line else 0) + n
        line.append(part)
    return "\n".join(lines + [sep.join(line)])
