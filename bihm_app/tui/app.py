"""``bihm-app``: the Textual dashboard for BiHM runs.

``make_app(runs_dir)`` builds the application (used by the console script and the tests alike);
``main()`` parses the command line. Training never runs inside the dashboard: runs are child
processes in their own session (see :mod:`bihm_app.tui.launcher`), followed through their run
folders, so the dashboard can be closed and reopened at any time.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Iterable
from pathlib import Path

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.widgets import Input

from bihm_app import __version__
from bihm_app.errors import BihmError
from bihm_app.store.runs import open_run
from bihm_app.tui import launcher
from bihm_app.tui.screens.base import one_line
from bihm_app.store.runs import runs_root


#: How often exited training processes are collected (and their failure shown).
REAP_S = 0.5


class BihmApp(App):
    """The dashboard. Screens: runs (home), run, samples, inpaint, layers, classify, compare, new run, help."""

    CSS_PATH = "app.tcss"
    TITLE = "bihm-app"
    #: Size classes for app.tcss: "-narrow" below 100 columns, "-short" below 30 rows (80×24 must fit).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [
        Binding("q", "quit_key", "Quit", tooltip="Quit the dashboard (running trainings keep going); ctrl+q where q types"),
        Binding("question_mark", "help_key", "Help", tooltip="Show the keys of this screen; f1 where ? types"),
        # where q and ? type these do the same (the footer shows them in their place: key_footer.py)
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, tooltip="Quit, also where q types (asks first if the new-run form holds changes)"),  # fmt: skip
        Binding("f1", "help", "Help", show=False, tooltip="Show the keys of this screen, also where ? types"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False, tooltip="Switch between the light and dark theme"),
    ]

    def __init__(self, runs_dir: Path | None = None, cursor_blink: bool = True) -> None:
        super().__init__()
        self.runs_root = runs_root(runs_dir)
        self.cursor_blink = cursor_blink
        self.children_procs: dict[str, subprocess.Popen] = {}
        #: How the last process launched here for a run ended: name -> (exit code, last log line).
        self.child_exits: dict[str, tuple[int, str]] = {}
        self._toasts: dict[tuple[str, str, str], Notification] = {}

    def get_default_screen(self) -> Screen:
        from bihm_app.tui.screens.runs import RunsScreen

        return RunsScreen()

    def on_mount(self) -> None:
        self.sub_title = str(self.runs_root)
        self.set_interval(REAP_S, self.reap_children)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:  # fmt: skip
        """A toast; the same message again while it is still shown replaces it (fresh timeout)
        instead of stacking copies (six presses of a key give one toast, not six)."""
        key = (str(message), str(title), str(severity))
        old = self._toasts.get(key)
        if old is not None and not old.has_expired:
            if old not in self._notifications:
                return  # posted a moment ago, not on screen yet
            self._unnotify(old, refresh=False)
        self._toasts = {k: n for k, n in self._toasts.items() if not n.has_expired}
        note = Notification(message, title, severity, self.NOTIFICATION_TIMEOUT if timeout is None else timeout, markup=markup)
        self._toasts[key] = note
        self.post_message(Notify(note))

    # -- navigation ------------------------------------------------------------------------------
    def open_run(self, name: str) -> None:
        from bihm_app.tui.screens.run import RunScreen

        self.push_screen(RunScreen(name))

    def open_samples(self, name: str) -> None:
        from bihm_app.tui.screens.samples import SamplesScreen

        self.push_screen(SamplesScreen(name))

    def open_inpaint(self, name: str) -> None:
        from bihm_app.tui.screens.inpaint import InpaintScreen

        self.push_screen(InpaintScreen(name))

    def open_layers(self, name: str) -> None:
        from bihm_app.tui.screens.layers import LayersScreen

        self.push_screen(LayersScreen(name))

    def open_classify(self, name: str) -> None:
        """The classify view of a semi-supervised run (refused with a notification for other runs)."""
        from bihm_app.tui.screens.classify import open_classify

        open_classify(self.screen, name)  # type: ignore[arg-type]

    def open_compare(self, names: list[str]) -> None:
        from bihm_app.tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(names))

    def action_new_run(self) -> None:
        from bihm_app.tui.screens.new_run import NewRunScreen

        self.push_screen(NewRunScreen())

    def action_help(self) -> None:
        from bihm_app.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    # -- quitting ---------------------------------------------------------------------------------
    def letters_type(self) -> bool:
        """Whether ``q`` and ``?`` type on the screen under any dialog (text field focused, ``LETTERS_TYPE``)."""
        under = next(s for s in reversed(self.screen_stack) if not s.is_modal)
        return isinstance(under.focused, Input) or bool(getattr(under, "LETTERS_TYPE", False))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``q`` quits and ``?`` helps only where they cannot be text; there the footer offers
        ``ctrl+q`` and ``f1`` instead, which work everywhere."""
        if action in ("quit_key", "help_key") and self.letters_type():
            return False
        return True

    action_help_key = action_help

    def action_quit(self) -> None:  # type: ignore[override]
        """Quit, after asking when a form holds changes that would be lost."""
        from bihm_app.tui.screens.confirm import ConfirmScreen

        dirty = [s for s in self.screen_stack if getattr(s, "dirty", False)]
        if not dirty:
            self.exit()
            return
        if isinstance(self.screen, ConfirmScreen):
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Quit and discard the new run's settings?", "Quit", "Keep editing"), answer)

    action_quit_key = action_quit

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_home(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    # -- runs: start, stop, resume -----------------------------------------------------------------
    def _error(self, exc: BaseException, title: str) -> None:
        self.notify(one_line(exc), title=title, severity="error", timeout=8)

    def launch_new(self, spec: launcher.NewRunSpec) -> str | None:
        """Start a training child process and open its live view; None (and a notification) on failure."""
        try:
            name, proc = launcher.launch_new(self.runs_root, spec)
        except (BihmError, OSError) as exc:
            self._error(exc, "cannot start")
            return None
        self.children_procs[name] = proc
        self.child_exits.pop(name, None)
        self.notify(f"started run {name} (pid {proc.pid})", title="training")
        from bihm_app.tui.screens.run import RunScreen

        self.switch_screen(RunScreen(name, starting=True))
        return name

    def stop_run(self, name: str) -> None:
        try:
            line = launcher.stop(self.runs_root, name, self.children_procs.get(name))
        except (BihmError, OSError) as exc:
            self._error(exc, "cannot stop")
            return
        self.notify(line, title="stopping")

    def resume_run(self, name: str) -> None:
        try:
            proc = launcher.launch_resume(self.runs_root, name)
        except (BihmError, OSError) as exc:
            self._error(exc, "cannot resume")
            return
        self.children_procs[name] = proc
        self.child_exits.pop(name, None)
        self.notify(f"resuming run {name} (pid {proc.pid})", title="training")

    def reap_children(self) -> None:
        """Collect exited training processes (no zombies) and say at once how they ended: a failure
        shows the last line of the process's log in a toast and on the run's view."""
        for name, proc in list(self.children_procs.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.children_procs[name]
            line, failed = launcher.exit_report(self.runs_root, name, rc)
            if failed:  # an error, or an exit before the run folder existed: say why at once (here and on its view)
                self.child_exits[name] = (rc, launcher.last_log_line(self.runs_root, name))
            self.notify(line, title="training", severity="error" if failed and rc not in launcher.STOPPED_CODES else "information",
                        timeout=15 if failed else None, markup=False)  # fmt: skip
            views = [s for s in self.screen_stack if getattr(s, "run_name", None) == name and hasattr(s, "child_exited")]
            for screen in views if self.is_running else ():  # shutting down: their widgets may be gone
                screen.child_exited(rc)

    # -- command palette -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        from bihm_app.tui.commands import palette_commands

        yield from palette_commands(self, screen, super().get_system_commands(screen))


def make_app(runs_dir: Path | None = None, cursor_blink: bool = True) -> BihmApp:
    """Build the dashboard for ``runs_dir`` (default: ``$BIHM_HOME/runs`` or the platform folder)."""
    return BihmApp(runs_dir=runs_dir, cursor_blink=cursor_blink)


def main(argv: list[str] | None = None) -> None:
    """``bihm-app [--runs-dir DIR]``."""
    parser = argparse.ArgumentParser(prog="bihm-app", description="Dashboard for BiHM training runs.")
    parser.add_argument("--runs-dir", type=Path, default=None, help="runs folder (default: $BIHM_HOME/runs)")
    parser.add_argument("--version", action="version", version=f"bihm-app {__version__}")
    args = parser.parse_args(argv)
    make_app(args.runs_dir).run()


if __name__ == "__main__":
    main()
