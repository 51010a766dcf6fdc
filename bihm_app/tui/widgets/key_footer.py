"""The footer of every screen: the screen's keys on the left, ``?`` and ``q`` always on the right.

Textual's :class:`~textual.widgets.Footer` lists the focused widget's keys, then the screen's,
then the application's, and cuts what does not fit — at 80 columns ``?`` (help) and ``q`` (quit)
were the first to go. Here the keys in :data:`PINNED` are docked to the right edge, so they stay
visible at any width; the screen's own keys fill the rest (and ``?`` lists them all). On narrow
screens (the ``-narrow`` breakpoint class) the footer is compact and app.tcss leaves the command
palette's key out (ctrl+p still opens it; the help screen says so).

Where ``?`` and ``q`` are text (a text field has focus, the new-run form) the application turns
them off, and their stand-ins ``f1`` and ``ctrl+q`` take their places: the footer shows the keys
that work on the screen as it is now.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Binding keys shown at the right edge, in this order: each key, or its stand-in where it types.
PINNED = (("question_mark", "f1"), ("q", "ctrl+q"))


class KeyFooter(Footer):
    """A :class:`Footer` whose help and quit keys never fall off the right edge."""

    DEFAULT_CSS = """
    KeyFooter .footer-keys { width: 1fr; height: 1; overflow: hidden hidden; }
    KeyFooter .footer-pinned { width: auto; height: 1; padding-left: 1; }
    KeyFooter .footer-pinned FooterKey { margin: 0; }
    KeyFooter.-compact .footer-pinned FooterKey { margin: 0; padding-right: 1; }
    """

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:  # the base class shows nothing yet: neither do the stand-ins
            return
        pinned: dict[str, FooterKey] = {}
        palette: list[FooterKey] = []
        # The base class yields the keys (some inside KeyGroups); the screen's go into a box that
        # takes the free width and clips, the pinned ones into a box of their own after it.
        with HorizontalGroup(classes="footer-keys"):
            for widget in super().compose():
                if isinstance(widget, FooterKey) and "-command-palette" in widget.classes:
                    palette.append(widget)
                elif isinstance(widget, FooterKey) and any(widget.key in slot for slot in PINNED):
                    pinned[widget.key] = widget
                else:
                    yield widget
        with HorizontalGroup(classes="footer-pinned"):
            for key, stand_in in PINNED:
                shown = pinned.get(key) or pinned.get(stand_in) or self._stand_in(stand_in)
                if shown is not None:
                    yield shown
        yield from palette

    def _stand_in(self, key: str) -> FooterKey | None:
        """A key for an active binding that is not shown by default (``show=False``)."""
        active = self.screen.active_bindings.get(key)
        if active is None or not active.enabled:
            return None
        b = active.binding
        return FooterKey(
            b.key, self.app.get_key_display(b), b.description, b.action, tooltip=active.tooltip or b.tooltip
        ).data_bind(compact=Footer.compact)

    def on_mount(self) -> None:
        self._follow_width()

    def on_resize(self) -> None:
        self._follow_width()

    def _follow_width(self) -> None:
        self.compact = self.screen.has_class("-narrow")
