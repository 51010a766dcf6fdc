"""The ``?`` help screen: every key of the screen below and of the application."""

from __future__ import annotations

import textwrap

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from bihm_app.tui.screens.base import screen_name
from bihm_app.tui.format import escape

INTRO = (
    "[b]bihm-app[/b] — train, watch, sample and compare Bidirectional Helmholtz Machines.\n"
    "Runs live in the runs folder; a run trains in its own process, so closing the dashboard never stops it.\n"
    "ctrl+p opens the command palette (every action below is there too). Mouse: click rows, buttons, tabs.\n"
    "tab moves the focus (a panel taller than the screen then scrolls with the arrows, PgUp/PgDn, Home/End).\n"
    "escape, q or ? closes this help.\n"
)


KEY_WIDTH = 10  # keys right-aligned in this many columns, then two spaces and the description
INDENT = 2 + KEY_WIDTH + 2


def key_lines(screen: Screen, width: int = 100) -> list[str]:
    """'key  description' for the screen's and the app's bindings, descriptions wrapped to
    ``width`` columns with their continuation lines indented under the description."""
    lines = []
    for title, bindings in ((screen_name(screen), getattr(screen, "BINDINGS", [])),
                            ("everywhere", getattr(screen.app, "BINDINGS", []))):  # fmt: skip
        rows = []
        for b in bindings:
            if not isinstance(b, Binding):
                continue
            key = screen.app.get_key_display(b)
            text = textwrap.wrap(b.tooltip or b.description, max(20, width - INDENT)) or [""]
            rows.append(f"  [b]{escape(f'{key:>{KEY_WIDTH}}')}[/b]  {escape(text[0])}")
            rows += [" " * INDENT + escape(more) for more in text[1:]]
        if rows:
            lines.append(f"[u]{escape(title)}[/u]")
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
            yield Static(self._text(), id="help-text")

    def _text(self) -> str:
        # the box: 90 % of the screen, at most 100 wide (app.tcss), less its border, padding, scroll bar
        width = min(100, int(self.app.size.width * 0.9)) - 6
        return INTRO + "\n" + "\n".join(key_lines(self.under, width))

    def on_resize(self) -> None:
        self.query_one("#help-text", Static).update(self._text())

    def action_dismiss(self) -> None:
        self.dismiss(None)
