"""The footer of every screen: the screen's keys on the left, ``?`` and ``q`` always on the right.

Textual's :class:`~textual.widgets.Footer` lists the focused widget's keys, then the screen's,
then the application's, and cuts what does not fit — at 80 columns ``?`` (help) and ``q`` (quit)
were the first to go. Here the keys in :data:`PINNED` are docked to the right edge, so they stay
visible at any width; the screen's own keys fill the rest (and ``?`` lists them all). On narrow
screens (the ``-narrow`` breakpoint class) the footer is compact and the command palette's key
is left out (ctrl+p still opens it; the help screen says so).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = ("question_mark", "q")  # binding keys, in the order they are shown


class KeyFooter(Footer):
    """A :class:`Footer` whose help and quit keys never fall off the right edge."""

    DEFAULT_CSS = """
    KeyFooter .footer-pinned {
        dock: right;
        width: auto;
        height: 1;
        background: $footer-background;
        padding-left: 1;
    }
    KeyFooter .footer-pinned FooterKey { margin-right: 1; }
    Screen.-narrow KeyFooter FooterKey.-command-palette { display: none; }
    """

    def compose(self) -> ComposeResult:
        pinned: dict[str, FooterKey] = {}
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.key in PINNED and "-command-palette" not in widget.classes:
                pinned[widget.key] = widget
            else:
                yield widget
        if pinned:
            keys = [pinned[k] for k in PINNED if k in pinned]
            yield HorizontalGroup(*keys, classes="footer-pinned")

    def on_mount(self) -> None:
        self._follow_width()

    def on_resize(self) -> None:
        self._follow_width()

    def _follow_width(self) -> None:
        self.compact = self.screen.has_class("-narrow")
