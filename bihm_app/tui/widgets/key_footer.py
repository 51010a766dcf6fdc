"""The footer of every screen: the screen's keys on the left, ``?`` and ``q`` always on the right.

Textual's :class:`~textual.widgets.Footer` lists the focused widget's keys, then the screen's,
then the application's, and cuts what does not fit — at 80 columns ``?`` (help) and ``q`` (quit)
were the first to go, and the last key that fitted lost half its label ("x Sto"). Here the keys in
:data:`PINNED` are docked to the right edge, so they stay visible at any width; the screen's own
keys fill the rest, whole or not at all:

1. every key with its label, if they all fit;
2. else every key with its short label (:data:`SHORT`);
3. else the first keys that fit (screens list their keys most important first), and the help key
   reads ``? more``: the help screen lists them all.

On narrow screens (below :data:`COMPACT_BELOW` columns, the ``-narrow`` breakpoint of the app) the
footer is compact and app.tcss leaves the command palette's key out (ctrl+p still opens it; the
help screen says so).

Where ``?`` and ``q`` are text (a text field has focus, the new-run form) the application turns
them off, and their stand-ins ``f1`` and ``ctrl+q`` take their places: the footer shows the keys
that work on the screen as it is now.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: Binding keys shown at the right edge, in this order: each key, or its stand-in where it types.
PINNED = (("question_mark", "f1"), ("q", "ctrl+q"))
#: The help key's label when some of the screen's keys did not fit.
MORE = "more"
#: Below this many columns the footer is compact (the app's "-narrow" breakpoint).
COMPACT_BELOW = 100
#: Short labels, used when the long ones do not all fit (by the binding's description).
SHORT = {
    "New run": "New",
    "Braille/blocks": "Pixels",
    "Save PNG": "Save",
    "Regenerate": "Redraw",
    "Run chain": "Run",
    "Image −": "Prev",
    "Image +": "Next",
    "Layer −": "Down",
    "Layer +": "Up",
    "log p / 2 log Z": "View",
    "All config": "All",
    "Refresh": "Reload",
    "Classify": "Classify",
}


def key_width(key_display: str, description: str, compact: bool, pinned: bool = False) -> int:
    """Columns a :class:`FooterKey` takes with its margin (FooterKey's and this footer's CSS)."""
    k, d = cell_len(key_display), cell_len(description)
    if compact:  # key padding 0, description padding-left 1; margin-right 1 (pinned: padding-right 1)
        return k + (1 + d if description else 0) + 1
    return k + 2 + (d + 1 if description else 0)  # key padding 0 1, description padding-right 1


def fit_keys(keys: list[tuple[str, str]], room: int, compact: bool) -> tuple[list[str], int]:
    """Labels for the ``(key display, description)`` pairs that fit in ``room`` columns: all long
    labels, else all short ones, else the first short ones that fit; and how many were left out."""
    long = [d for _, d in keys]
    if sum(key_width(k, d, compact) for (k, _), d in zip(keys, long)) <= room:
        return long, 0
    short = [SHORT.get(d, d) for _, d in keys]
    used, shown = 0, []
    for (k, _), d in zip(keys, short):
        used += key_width(k, d, compact)
        if used > room:
            break
        shown.append(d)
    return shown, len(keys) - len(shown)


class KeyFooter(Footer):
    """A :class:`Footer` whose help and quit keys never fall off the right edge, and whose other
    keys are shown whole (short labels, the first ones, ``? more``) or not at all."""

    DEFAULT_CSS = """
    KeyFooter .footer-keys { width: 1fr; height: 1; overflow: hidden hidden; }
    KeyFooter .footer-pinned { width: auto; height: 1; padding-left: 1; }
    KeyFooter .footer-pinned FooterKey { margin: 0; }
    KeyFooter.-compact .footer-pinned FooterKey { margin: 0; padding-right: 1; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._composed_width = -1
        #: How many of the screen's keys the footer left out (the help screen lists them).
        self.left_out = 0

    def _width(self) -> int:
        return self.size.width or self.app.size.width

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:  # the base class shows nothing yet: neither do the stand-ins
            return
        width = self._width()
        self._composed_width = width
        compact = width < COMPACT_BELOW
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        pinned: dict[str, FooterKey] = {}
        palette: list[FooterKey] = []
        keys: list[FooterKey] = []
        others = []
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "-command-palette" in widget.classes:
                palette.append(widget)
            elif isinstance(widget, FooterKey) and any(widget.key in slot for slot in PINNED):
                pinned[widget.key] = widget
            elif isinstance(widget, FooterKey):
                keys.append(widget)
            else:
                others.append(widget)  # a key group's label (no screen here uses groups)
        right = [w for w in (pinned.get(k) or pinned.get(s) or self._stand_in(s) for k, s in PINNED) if w is not None]
        # the room left of the pinned keys (their box has padding-left 1; the help key may read "more")
        taken = 1 + sum(key_width(w.key_display, MORE if w.key in PINNED[0] else w.description, compact, True) for w in right)
        if palette and not compact:
            taken += sum(key_width(w.key_display, w.description, compact) + 2 for w in palette)  # border + padding
        labels, self.left_out = fit_keys([(w.key_display, w.description) for w in keys], width - taken, compact)
        with HorizontalGroup(classes="footer-keys"):
            for widget, label in zip(keys, labels):
                widget.description = label
                yield widget
            yield from others
        with HorizontalGroup(classes="footer-pinned"):
            for widget in right:
                if self.left_out and widget.key in PINNED[0]:
                    widget.description = MORE
                yield widget
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

    def on_resize(self) -> None:
        if self._bindings_ready and self.is_attached and self._width() != self._composed_width:
            self._composed_width = self._width()
            self.call_after_refresh(self.recompose)
