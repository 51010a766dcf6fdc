"""The command palette (ctrl+p): Textual's own commands, the dashboard's, then the keys of the
screen below — each under one human title; an action offered twice is listed once."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from bihm_app.tui.screens.base import screen_name

#: Actions the dashboard's own commands already offer (a screen's key for them is not repeated).
COVERED = frozenset({"new_run", "help", "quit", "quit_key", "help_key", "toggle_theme", "home"})


def palette_commands(app: App, screen: Screen, builtin: Iterable[SystemCommand]) -> Iterable[SystemCommand]:
    own = [
        SystemCommand("New run", "Open the form that starts a training run", app.action_new_run),  # type: ignore[attr-defined]
        SystemCommand("Help", "Show the keys of this screen", app.action_help),  # type: ignore[attr-defined]
        SystemCommand("Light/dark theme", "Switch between the light and dark theme", app.action_toggle_theme),  # type: ignore[attr-defined]
    ]
    if len(app.screen_stack) > 2:
        own.append(SystemCommand("Runs list", "Back to the runs list", app.action_home))  # type: ignore[attr-defined]
    titles: set[str] = set()
    for cmd in [*builtin, *own]:
        if cmd.title not in titles:
            titles.add(cmd.title)
            yield cmd
    covered = set(COVERED)
    where = screen_name(screen)
    for b in getattr(screen, "BINDINGS", []):
        if not isinstance(b, Binding) or b.action in covered or not b.description:
            continue
        covered.add(b.action)

        def run(action: str = b.action, screen: Screen = screen) -> None:
            app.call_later(screen.run_action, action)

        title = b.description if b.description not in titles else f"{b.description} — {where}"  # two of one name
        titles.add(title)
        yield SystemCommand(title, f"{b.tooltip or b.description} ({where})", run)
