"""The ``?`` help screen: every key of the screen below and of the application."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from bihm_app.tui.screens.base import screen_name

INTRO = (
    "[b]bihm-app[/b] — train, watch, sample and compare Bidirectional Helmholtz Machines.\n"
    "Runs live in the runs folder; a run trains in its own process, so closing the dashboard never stops it.\n"
    "ctrl+p opens the command palette (every action below is there too). Mouse: click rows, buttons, tabs.\n"
)


def key_lines(screen: Screen) -> list[str]:
    """'key  description' for the screen's and the app's bindings."""
    lines = []
    for title, bindings in ((screen_name(screen), getattr(screen, "BINDINGS", [])),
                            ("everywhere", getattr(screen.app, "BINDINGS", []))):  # fmt: skip
        rows = []
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            key = screen.app.get_key_display(b)
            rows.append(f"  [b]{key:>10}[/b]  {b.tooltip or b.description}")
        if rows:
            lines.append(f"[u]{title}[/u]")
            lines += rows
    return lines


class HelpScreen(ModalScreen[None]):
    """Keys of the screen it was opened from; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(INTRO + "\n" + "\n".join(key_lines(self.under)), id="help-text")

    def action_dismiss(self) -> None:
        self.dismiss(None)
