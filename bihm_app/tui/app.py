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
from textual.screen import Screen

from bihm_app import __version__
from bihm_app.errors import BihmError
from bihm_app.store.runs import open_run
from bihm_app.tui import launcher
from bihm_app.tui.screens.base import one_line
from bihm_app.store.runs import runs_root


class BihmApp(App):
    """The dashboard. Screens: runs (home), run, samples, inpaint, layers, classify, compare, new run, help."""

    CSS_PATH = "app.tcss"
    TITLE = "bihm-app"
    #: Size classes for app.tcss: "-narrow" below 100 columns, "-short" below 30 rows (80×24 must fit).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal"), (160, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit the dashboard (running trainings keep going)"),
        Binding("question_mark", "help", "Help", tooltip="Show the keys of this screen"),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False, tooltip="Switch between the light and dark theme"),
    ]

    def __init__(self, runs_dir: Path | None = None, cursor_blink: bool = True) -> None:
        super().__init__()
        self.runs_root = runs_root(runs_dir)
        self.cursor_blink = cursor_blink
        self.children_procs: dict[str, subprocess.Popen] = {}

    def get_default_screen(self) -> Screen:
        from bihm_app.tui.screens.runs import RunsScreen

        return RunsScreen()

    def on_mount(self) -> None:
        self.sub_title = str(self.runs_root)
        self.set_interval(1.0, self.reap_children)

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
        self.notify(f"started run {name} (pid {proc.pid})", title="training")
        from bihm_app.tui.screens.run import RunScreen

        self.switch_screen(RunScreen(name, starting=True))
        return name

    def stop_run(self, name: str) -> None:
        try:
            pid = launcher.stop_run(open_run(name, self.runs_root))
        except (BihmError, OSError) as exc:
            self._error(exc, "cannot stop")
            return
        self.notify(f"asked run {name} to stop (SIGINT to pid {pid}); it saves a checkpoint first", title="stopping")

    def resume_run(self, name: str) -> None:
        try:
            proc = launcher.launch_resume(self.runs_root, name)
        except (BihmError, OSError) as exc:
            self._error(exc, "cannot resume")
            return
        self.children_procs[name] = proc
        self.notify(f"resuming run {name} (pid {proc.pid})", title="training")

    def reap_children(self) -> None:
        """Collect exited training processes (no zombies) and say how they ended."""
        for name, proc in list(self.children_procs.items()):
            rc = proc.poll()
            if rc is None:
                continue
            del self.children_procs[name]
            if rc == 0:
                self.notify(f"run {name} finished", title="training")
            elif rc == 130:
                self.notify(f"run {name} stopped (checkpoint saved)", title="training")
            else:
                log = launcher.launch_log_path(self.runs_root, name)
                self.notify(f"run {name} exited with code {rc}; see {log}", title="training", severity="error", timeout=10)

    # -- command palette -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New run", "Open the form that starts a training run", self.action_new_run)
        yield SystemCommand("Help", "Show the keys of this screen", self.action_help)
        yield SystemCommand("Light/dark theme", "Switch between the light and dark theme", self.action_toggle_theme)
        if len(self.screen_stack) > 2:
            yield SystemCommand("Runs", "Back to the runs list", self.action_home)
        seen = set()
        for b in getattr(screen, "BINDINGS", []):
            if not isinstance(b, Binding) or b.action in seen:
                continue
            seen.add(b.action)
            action = b.action

            def run(action: str = action, screen: Screen = screen) -> None:
                self.call_later(screen.run_action, action)

            title = b.description or action
            yield SystemCommand(f"{title} ({screen.title or 'screen'})", b.tooltip or title, run)


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
