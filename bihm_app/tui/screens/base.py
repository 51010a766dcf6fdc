"""What every dashboard screen shares: the runs root, one-line errors, safe thread workers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker, get_current_worker

from bihm_app.errors import BihmError
from bihm_app.runner.formats import printable


TOAST_WIDTH, TOAST_FRAME = 60, 4  # a toast's width (Textual's CSS) and what its border and padding take


def one_line(exc: BaseException) -> str:
    """A user-facing line for an exception: the message of a BihmError, else 'Type: message'."""
    if isinstance(exc, BihmError):
        return str(exc)
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:300]


def screen_name(screen: Screen) -> str:
    """A person's name for a screen (help heading, palette): its ``HUMAN_NAME``, else its title."""
    return getattr(screen, "HUMAN_NAME", "") or screen.title or "this screen"


class BihmScreen(Screen):
    """Base screen: ``self.root`` is the runs folder; ``in_thread`` runs work off the UI thread."""

    @property
    def root(self) -> Path:
        return self.app.runs_root  # type: ignore[attr-defined]

    def fail(self, exc: BaseException | str, title: str = "error") -> None:
        """Show a problem as a notification (never a traceback)."""
        self.notify(printable(exc if isinstance(exc, str) else one_line(exc), 1000), title=title, severity="error", timeout=8)

    def in_thread(
        self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
        group: str = "default", exclusive: bool = True, description: str = "",
        failed: Callable[[str], None] | None = None,
    ) -> Worker:
        """Run ``fn(*args)`` in a thread worker; ``done(result)`` runs on the UI thread afterwards.

        Exceptions are caught here and shown with :meth:`fail`, so a failing worker never takes
        the application down; ``failed(line)`` then runs on the UI thread too, so a status that
        said "working …" can say what went wrong instead.
        """

        def report(exc: BaseException) -> None:
            self.fail(exc)
            if failed is not None:
                failed(one_line(exc))

        def job() -> None:
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - the UI edge: every failure becomes a notification
                if not get_current_worker().is_cancelled:
                    self.call_ui(report, exc)
                return
            if done is not None and not get_current_worker().is_cancelled:
                self.call_ui(done, result)

        return self.run_worker(job, thread=True, group=group, exclusive=exclusive, description=description or group)

    def call_ui(self, fn: Callable[..., Any], *args: Any) -> None:
        """From a thread worker: ``fn(*args)`` on the UI thread, unless this screen has been closed
        meanwhile (a result arriving after ``escape`` must not touch the removed widgets) or the
        application is shutting down (it stops running, then removes each screen's widgets before
        the screen leaves the stack)."""

        def guarded() -> None:
            if self.app.is_running and self.is_attached and self in self.app.screen_stack:  # popped screens lose widgets
                fn(*args)

        self.app.call_from_thread(guarded)

    def toast_path(self, path: str | Path) -> str:
        """A path for a toast (markup-escaped): relative to BIHM_HOME (or ~), broken after a '/'
        to the toast's width, never mid-name."""
        from bihm_app.tui import format as fmt

        width = min(TOAST_WIDTH, self.app.size.width // 2) - TOAST_FRAME  # Textual's Toast: 60, at most half the screen
        return fmt.escape(fmt.wrap_path(fmt.short_path(path), max(20, width)))

    def is_cancelled(self) -> bool:
        """Inside a thread worker: whether it was cancelled (screen closed, a newer job started)."""
        return get_current_worker().is_cancelled


def text_input(blink: bool, value: str = "", **kwargs) -> Input:
    """An Input whose cursor blinks only if ``blink`` (off for deterministic snapshots)."""
    widget = Input(value, **kwargs)
    widget.cursor_blink = blink
    return widget
